/**
 * Raw lexicons.v1 sockets for the channel tests: `$connect` (with positions, a resume token),
 * `$connected`, and waiting for the items of a frame stream (every wait bounded).
 */
import assert from 'node:assert/strict';
import { expireAfter, TestClient, type ConnectOptions } from '../helpers/client.js';

export type Item = Record<string, any>;

export interface V1Socket {
  socket: TestClient;
  connected: { id: string; resume: string; resumed?: boolean };
  /** Items received after `$connected`, in order (frames flattened). */
  items: Item[];
  /** Resolves with the first item (received so far or later) matching, bounded in time. */
  until(match: (item: Item) => boolean, timeoutMs?: number): Promise<Item>;
  /** Sends a frame and resolves with the item tagged with `$id`. */
  call(name: string, args: Record<string, unknown>, id: number, extra?: Record<string, unknown>): Promise<Item>;
  close(): Promise<unknown>;
}

export interface ConnectFrame {
  headers?: Record<string, unknown>;
  positions?: Record<string, { epoch: string; offset: number }>;
  resume?: string;
}

/** Opens a v1 socket, sends `$connect`, waits for `$connected` (items sent before it come first in `items`). */
export async function v1(url: string, connect: ConnectFrame = { headers: { Guest: { name: 'ann' } } }, options: ConnectOptions = {}): Promise<V1Socket> {
  const socket = await TestClient.connect(url, { protocols: 'lexicons.v1', ...options });
  const items: Item[] = [];
  const watchers = new Set<() => void>();
  socket.ws.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as unknown;
    for (const item of Array.isArray(frame) ? frame : [frame]) items.push(item as Item);
    for (const w of [...watchers]) w();
  });
  const until = (match: (item: Item) => boolean, timeoutMs = 10_000): Promise<Item> => {
    let from = 0;
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        for (; from < items.length; from++) {
          if (match(items[from]!)) {
            resolve(items[from]!);
            return true;
          }
        }
        return false;
      };
      if (check()) return;
      const cancel = expireAfter(timeoutMs, () => {
        watchers.delete(watch);
        reject(new Error(`no matching item within ${timeoutMs} ms; last items: ${JSON.stringify(items.slice(-5)).slice(0, 800)}`));
      });
      const watch = (): void => {
        if (!check()) return;
        cancel();
        watchers.delete(watch);
      };
      watchers.add(watch);
    });
  };
  socket.send({ $connect: connect });
  const connected = (await until((i) => '$connected' in i)).$connected as V1Socket['connected'];
  return {
    socket,
    connected,
    items,
    until,
    call(name, args, id, extra = {}) {
      socket.send({ [name]: args, $id: id, ...extra });
      return until((i) => i.$id === id);
    },
    close: () => socket.close(),
  };
}

/** Opens a v1 socket as Guest `name` (with more of the `$connect` frame) and adds it to `open`. */
export async function guest(url: string, open: V1Socket[], name: string, extra: ConnectFrame = {}): Promise<V1Socket> {
  const socket = await v1(url, { headers: { Guest: { name } }, ...extra });
  open.push(socket);
  return socket;
}

/** Calls `Join` (call id `id`); resolves with the `$subscribed` item for `channel`. */
export async function joinChannel(socket: V1Socket, channel: string, id: number): Promise<Item> {
  const subscribed = socket.until((i) => i.$subscribed?.channel === channel);
  await socket.call('Join', { channel }, id);
  return (await subscribed).$subscribed as Item;
}

/** The offsets of `channel` on the items received (in order). */
export function offsets(items: readonly Item[], channel: string): number[] {
  return items.filter((i) => i.$off?.[channel] !== undefined).map((i) => i.$off[channel] as number);
}

/** Asserts `list` is exactly from..to, each once, in order. */
export function assertRun(list: readonly number[], from: number, to: number, what = 'offsets'): void {
  assert.equal(list.length, to - from + 1, `${what}: ${list.length} items for ${from}..${to}`);
  list.forEach((o, i) => assert.equal(o, from + i, `${what}: item ${i} is ${o}, expected ${from + i}`));
}
