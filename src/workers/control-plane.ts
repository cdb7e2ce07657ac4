/**
 * @module workers/control-plane
 * The control plane between a pool worker and the main thread, carried by comlink.
 *
 * Transport: piscina owns the worker's task port, so each worker makes its own MessageChannel at
 * start-up and hands one end to the main thread through `parentPort` (piscina forwards such
 * messages as its documented pool `'message'` event). The message is tagged with the worker's
 * threadId. Both ends are point-to-point MessagePorts: no broadcast, no reply routing.
 */
import { MessageChannel, parentPort, threadId, type MessagePort } from 'node:worker_threads';
import { wrap, type Endpoint, type Remote } from 'comlink';
import type { LogStatus } from '../server.js';
import type { PresenceMember } from '../components.js';
import type { StoreInit } from '../job-contract.js';
import type { ServerInfo } from './handles.js';
import type { CommitResult } from '../storage/api.js';
import type { CommitTicket } from './progress.js';

/** A commit through the cluster's commit stream: decided, or not sent (Redis unreachable). */
export type ClusterCommitResult = CommitResult | { ok: false; reason: 'unavailable'; message: string };

/** What the main thread exposes to workers. */
export interface ControlApi {
  /** The shared store and log to attach to; answered once the data folder is open. */
  storeHandles(): Promise<StoreInit>;
  /** Live connection count and channel sizes (`sv.info()`). */
  info(): ServerInfo;
  /** The run-time channel registry (names created with `sv.createChannel`) and its version. */
  channels(): { version: number; names: string[] };
  /** The members of a presence channel, or their number (`sv.presence()`). */
  presence(channel: string, countOnly: boolean): PresenceMember[] | number;
  /** Forwards a log event to the server's `onLog`. */
  log(status: LogStatus, data: Record<string, unknown>): void;
  /**
   * Cluster mode: appends a commit record (JSON) of the job `ticket` names to the commit stream
   * and resolves with its node's decision (main/cluster.ts), after storing the ticket's finished
   * units into the job's progress slot when it committed (workers/progress.ts "Cluster mode").
   */
  commit(record: string, ticket: CommitTicket): Promise<ClusterCommitResult>;
}

/** Tag of the hand-over message sent through `parentPort`. */
export const CONTROL_TAG = 'lexicons:control';

export interface ControlHandOver {
  [CONTROL_TAG]: true;
  threadId: number;
  port: MessagePort;
}

export function isControlHandOver(message: unknown): message is ControlHandOver {
  return typeof message === 'object' && message !== null && (message as Record<string, unknown>)[CONTROL_TAG] === true;
}

/** Adapts a worker_threads MessagePort (an EventEmitter) to comlink's Endpoint. */
type Listener = Parameters<Endpoint['addEventListener']>[1];
type ListenerFn = (event: { data: unknown }) => void;

export function portEndpoint(port: MessagePort): Endpoint {
  const listeners = new WeakMap<object, (data: unknown) => void>();
  return {
    postMessage: (message: unknown, transfer?: unknown[]) => port.postMessage(message, transfer as never),
    addEventListener: (_type: string, handler: Listener) => {
      const l = (data: unknown) => {
        const event = { data };
        if (typeof handler === 'function') (handler as unknown as ListenerFn)(event);
        else (handler as unknown as { handleEvent: ListenerFn }).handleEvent(event);
      };
      port.on('message', l);
      listeners.set(handler, l);
    },
    removeEventListener: (_type: string, handler: Listener) => {
      const l = listeners.get(handler);
      if (l) port.off('message', l);
      listeners.delete(handler);
    },
    start: () => port.start(),
  };
}

/** Worker side: creates the channel, hands one end to the main thread, returns the proxy and its port. */
export function connectControl(): { control: Remote<ControlApi>; port: MessagePort } {
  if (!parentPort) throw new Error('connectControl() must run in a worker thread');
  const { port1, port2 } = new MessageChannel();
  const handOver: ControlHandOver = { [CONTROL_TAG]: true, threadId, port: port2 };
  parentPort.postMessage(handOver, [port2]);
  return { control: wrap<ControlApi>(portEndpoint(port1)), port: port1 };
}

/**
 * Worker side, at start: waits for the store handles. The port stays referenced while waiting (a
 * worker whose module is still waiting has nothing else keeping its thread alive); afterwards it
 * must not keep an idle worker alive on its own (piscina decides worker lifetime).
 */
export async function receiveStore(control: Remote<ControlApi>, port: MessagePort): Promise<StoreInit> {
  port.ref();
  try {
    return await control.storeHandles();
  } finally {
    port.unref();
  }
}
