/**
 * A TCP relay on a fixed loopback port in front of a server that restarts: clients (and a browser
 * page) keep one address while the server behind it is stopped and started again on a new port.
 *
 * Why: uWebSockets.js (this build) listens without SO_REUSEADDR, so a restarted server cannot take
 * its old port while the connections it closed linger in TIME_WAIT (up to 60 s on Linux).
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** Disposable: `await using relay = await startRelay(port)` closes it (and its connections). */
export interface Relay extends AsyncDisposable {
  readonly port: number;
  /** Where new connections go (the current server's port); existing ones keep theirs. */
  target: number;
  close(): Promise<void>;
}

export async function startRelay(target: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  const relay: Relay & { server?: Server } = { port: 0, target, close, [Symbol.asyncDispose]: close };
  const server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port: relay.target });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (relay as { port: number }).port = (server.address() as AddressInfo).port;
  return relay;
}
