/**
 * @module workers/channel-view
 * The channels a worker knows while it runs a job: the declared ones, its cache of the run-time
 * registry, and the job's own creates and drops (copy-on-write, so a savepoint mark is O(1)).
 *
 * The thread's view ({@link WorkerApp.view}) holds the declared channels and the registry cache;
 * each job gets its own view ({@link ChannelView.forJob}) for its creates and drops, sharing the
 * thread's cache: a cluster node runs several jobs on a worker at once (main/pool.ts), so a job's
 * channel changes must not be reset or seen by another job.
 */
import { ChannelRules } from '../channel-rules.js';

/** The registry cache of a thread, shared by its jobs' views. */
interface RuntimeCache {
  names: ReadonlySet<string>;
  version: number;
}

/** Channels known to this worker: declared ones, the run-time registry cache, this job's changes. */
export class ChannelView {
  readonly declared: ReadonlySet<string>;
  /** The Channel classes' rules (history, authorize, ...). */
  readonly rules: ChannelRules;
  readonly #cache: RuntimeCache;
  state: ChannelViewState = { created: new Set(), dropped: new Set() };

  constructor(declared: Iterable<string>, rules: ChannelRules = new ChannelRules([]), cache?: RuntimeCache) {
    this.declared = cache === undefined ? new Set(declared) : (declared as ReadonlySet<string>);
    this.rules = rules;
    this.#cache = cache ?? { names: new Set(), version: -1 };
  }

  get runtime(): ReadonlySet<string> {
    return this.#cache.names;
  }

  set runtime(names: ReadonlySet<string>) {
    this.#cache.names = names;
  }

  get runtimeVersion(): number {
    return this.#cache.version;
  }

  set runtimeVersion(version: number) {
    this.#cache.version = version;
  }

  exists(name: string): boolean {
    if (this.state.dropped.has(name)) return false;
    return this.declared.has(name) || this.state.created.has(name) || this.#cache.names.has(name);
  }

  /** A view for one job: no creates or drops yet, the thread's declared channels and registry cache. */
  forJob(): ChannelView {
    return new ChannelView(this.declared, this.rules, this.#cache);
  }
}

/** Copy-on-write, so a mark is O(1). */
export interface ChannelViewState {
  created: ReadonlySet<string>;
  dropped: ReadonlySet<string>;
}
