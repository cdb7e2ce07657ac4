/**
 * @module workers/worker-app
 * {@link WorkerApp}: everything a worker loaded once at start-up (workers/worker.ts) and every
 * job of the thread reads: the Server definition, the store, the Signals and Headers with their
 * compiled `args`, the channel view, the progress slots.
 */
import type { Header, Signal } from '../components.js';
import type { Server } from '../server.js';
import type { ArgSpec } from './args.js';
import type { ServerInfo } from './handles.js';
import type { ChannelView } from './recorder.js';
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
  readonly view: ChannelView;
  readonly progress: SharedArrayBuffer;
  readonly maxCallsPerFrame: number;
  readonly debug: boolean;
  info(): Promise<ServerInfo>;
  /** Refreshes the run-time channel registry cache from the main thread. */
  refreshChannels(): Promise<void>;
}
