/**
 * @module workers/worker-app
 * {@link WorkerApp}: everything a worker loaded once at start-up (workers/worker.ts) and every
 * job of the thread reads: the Server definition, the store, the Signals, Headers and live queries with
 * their compiled `args`, the channel view, the progress slots.
 */
import type { Header, Signal } from '../components.js';
import type { LiveQuery } from '../live-query.js';
import type { Server } from '../server.js';
import { compileArgs, type ArgSpec } from './args.js';
import type { ControlApi } from './control-plane.js';
import type { MainQueries } from './handles.js';
import { ChannelView } from './channel-view.js';
import type { TxnSource } from './steppers.js';

export interface ComponentEntry<C> {
  readonly name: string;
  readonly instance: C;
  readonly args: ArgSpec | undefined;
}

/** Everything a worker loaded once at start-up. */
export interface WorkerApp {
  readonly server: Server;
  readonly store: TxnSource;
  readonly signals: ReadonlyMap<string, ComponentEntry<Signal>>;
  /** Headers by canonical name (the main thread sends header data keyed by it). */
  readonly headers: ReadonlyMap<string, ComponentEntry<Header>>;
  /** Live queries by name (docs/live-queries.md). */
  readonly live: ReadonlyMap<string, ComponentEntry<LiveQuery>>;
  readonly view: ChannelView;
  readonly progress: SharedArrayBuffer;
  readonly maxCallsPerFrame: number;
  readonly maxRecoveredPublications: number;
  readonly debug: boolean;
  /** `sv.info()`, `sv.presence()`: answered by the main thread. */
  readonly main: MainQueries;
  /** Refreshes the run-time channel registry cache from the main thread. */
  refreshChannels(): Promise<void>;
}

function entries<C>(classes: ReadonlyMap<string, Function>): Map<string, ComponentEntry<C>> {
  const out = new Map<string, ComponentEntry<C>>();
  for (const [name, cls] of classes) {
    const args = compileArgs(name, (cls as { args?: Record<string, never> }).args);
    out.set(name, { name, instance: new (cls as new () => C)(), args });
  }
  return out;
}

/**
 * Builds the WorkerApp of a thread: one instance of each Signal and Header with its compiled
 * `args`, the channel view, and the calls to the main thread over the control plane.
 */
export function createWorkerApp(
  server: Server,
  store: TxnSource,
  settings: { progress: SharedArrayBuffer; maxCallsPerFrame: number; maxRecoveredPublications: number; debug: boolean },
  /** The main thread's ControlApi (over comlink in a worker: every answer is a promise). */
  control: { [K in 'info' | 'channels' | 'presence']: (...args: Parameters<ControlApi[K]>) => ReturnType<ControlApi[K]> | Promise<ReturnType<ControlApi[K]>> },
): WorkerApp {
  const view = new ChannelView(server.components.channels, server.components.channelRules);
  return {
    server,
    store,
    signals: entries<Signal>(server.components.signals),
    headers: entries<Header>(server.components.headers),
    live: entries<LiveQuery>(server.components.live),
    view,
    ...settings,
    main: {
      info: async () => control.info(),
      presence: async (channel, countOnly) => control.presence(channel, countOnly),
    },
    async refreshChannels() {
      const { version, names } = await control.channels();
      view.runtime = new Set(names);
      view.runtimeVersion = version;
    },
  };
}
