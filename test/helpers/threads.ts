/**
 * Worker-thread helpers for tests: spawn a task worker and await its result by events (message,
 * error, exit), and a shared start gate so several workers begin at the same moment.
 */
import { Worker } from 'node:worker_threads';

export interface TaskWorker<T> {
  readonly worker: Worker;
  /** Resolves with the worker's `{ done }` payload; rejects on `{ error }`, 'error', or early exit. */
  readonly done: Promise<T>;
  /** Resolves on the first message matching the predicate. */
  message(match: (msg: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Resolves with the exit code. */
  readonly exited: Promise<number>;
}

export function spawnTask<T>(url: URL, workerData: unknown): TaskWorker<T> {
  const worker = new Worker(url, { workerData });
  const waiters: Array<{ match: (msg: Record<string, unknown>) => boolean; resolve: (m: Record<string, unknown>) => void }> = [];
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  const done = new Promise<T>((resolve, reject) => {
    worker.on('message', (msg: Record<string, unknown>) => {
      for (const w of [...waiters]) {
        if (w.match(msg)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(msg);
        }
      }
      if ('done' in msg) resolve(msg.done as T);
      else if ('error' in msg) reject(new Error(`worker failed: ${String(msg.error)}`));
    });
    worker.once('error', reject);
    void exited.then((code) => reject(new Error(`worker exited with code ${code} before finishing`)));
  });
  done.catch(() => undefined); // observed by the test when it awaits
  return {
    worker,
    done,
    exited,
    message: (match) => new Promise((resolve) => waiters.push({ match, resolve })),
  };
}

/**
 * A start gate over shared memory: [0] workers ready, [1] go flag, [2] stop flag.
 * Workers increment [0] and wait for [1]; the test awaits `ready(n)` (without blocking the main
 * thread: Atomics.waitAsync), then calls `open()`.
 */
type WaitAsync = (arr: Int32Array, index: number, value: number) => { async: boolean; value: Promise<string> | string };

export class Gate {
  readonly sab = new SharedArrayBuffer(12);
  readonly #i32 = new Int32Array(this.sab);

  async ready(n: number): Promise<void> {
    for (;;) {
      const seen = Atomics.load(this.#i32, 0);
      if (seen >= n) return;
      const w = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(this.#i32, 0, seen);
      if (w.async) await w.value;
    }
  }

  open(): void {
    Atomics.store(this.#i32, 1, 1);
    Atomics.notify(this.#i32, 1);
  }

  stop(): void {
    Atomics.store(this.#i32, 2, 1);
  }
}

/**
 * Worker side of {@link Gate}: announces this worker as ready, then blocks until the test opens
 * the gate. Blocking is fine here: it runs in a worker thread, never on the main thread.
 */
export function passGate(gate: Int32Array): void {
  Atomics.add(gate, 0, 1);
  Atomics.notify(gate, 0);
  while (Atomics.load(gate, 1) === 0) Atomics.wait(gate, 1, 0, 50);
}
