/**
 * @module workers/channel-view
 * The channels a worker knows while it runs a job: the declared ones, its cache of the run-time
 * registry, and the job's own creates and drops (copy-on-write, so a savepoint mark is O(1)).
 */
import { ChannelRules } from '../channel-rules.js';

/** Channels known to this worker: declared ones, the run-time registry cache, this job's changes. */
export class ChannelView {
  readonly declared: ReadonlySet<string>;
  /** The Channel classes' rules (history, authorize, ...). */
  readonly rules: ChannelRules;
  runtime: ReadonlySet<string> = new Set();
  runtimeVersion = -1;
  state: ChannelViewState = { created: new Set(), dropped: new Set() };

  constructor(declared: Iterable<string>, rules: ChannelRules = new ChannelRules([])) {
    this.declared = new Set(declared);
    this.rules = rules;
  }

  exists(name: string): boolean {
    if (this.state.dropped.has(name)) return false;
    return this.declared.has(name) || this.state.created.has(name) || this.runtime.has(name);
  }

  resetJob(): void {
    this.state = { created: new Set(), dropped: new Set() };
  }
}

/** Copy-on-write, so a mark is O(1). */
export interface ChannelViewState {
  created: ReadonlySet<string>;
  dropped: ReadonlySet<string>;
}
