/**
 * @module main/control-host
 * The main thread's end of the control plane (see workers/control-plane.ts): one comlink endpoint per
 * worker thread, on the MessagePort the worker handed over. Calls are answered from main-thread
 * state without blocking.
 */
import type { MessagePort } from 'node:worker_threads';
import { expose } from 'comlink';
import { portEndpoint, type ControlApi } from '../workers/control-plane.js';

export class ControlHost {
  readonly #api: ControlApi;
  readonly #ports = new Map<number, MessagePort>();

  constructor(api: ControlApi) {
    this.#api = api;
  }

  /** Serves a worker's port (the previous port of a replaced thread id is closed). */
  attach(port: MessagePort, threadId: number): void {
    this.#ports.get(threadId)?.close();
    this.#ports.set(threadId, port);
    expose(this.#api, portEndpoint(port));
    // The control plane never keeps the process alive on its own.
    port.unref();
  }

  detach(threadId: number): void {
    this.#ports.get(threadId)?.close();
    this.#ports.delete(threadId);
  }

  close(): void {
    for (const port of this.#ports.values()) port.close();
    this.#ports.clear();
  }
}
