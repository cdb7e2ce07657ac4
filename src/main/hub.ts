/**
 * @module main/hub
 * {@link Hub}: the main-thread state shared by the socket handlers (main/app.ts), the dispatcher
 * and the effects: the open connections by id, the channel registry, the log and the metrics.
 */
import type { LogFn } from './log.js';
import { ChannelRegistry } from './channels.js';
import { Metrics } from './metrics.js';
import type { SocketConnection } from './socket-connection.js';

export interface Hub {
  readonly connections: Map<string, SocketConnection>;
  readonly channels: ChannelRegistry;
  readonly log: LogFn;
  readonly metrics: Metrics;
}

export function createHub(declaredChannels: Iterable<string>, log: LogFn): Hub {
  return { connections: new Map(), channels: new ChannelRegistry(declaredChannels, log), log, metrics: new Metrics() };
}

/** Connections with an open socket (the rest are upgrading, or closed with work in flight). */
export function openConnectionCount(hub: Hub): number {
  let n = 0;
  for (const conn of hub.connections.values()) if (conn.open) n++;
  return n;
}
