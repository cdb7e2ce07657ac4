/**
 * @module main/hub
 * {@link Hub}: the main-thread state shared by the socket handlers (main/app.ts), the dispatcher
 * and the effects: the open connections by id, the channel registry and the channels' rules,
 * ordered history delivery, presence, sessions, live queries, the log and the metrics.
 */
import { ChannelRules } from '../channel-rules.js';
import { DEFAULT_LIMITS, type ServerLimits } from '../server.js';
import type { HistoryRange } from '../job-contract.js';
import type { SharedStore } from '../storage/store.js';
import type { LogFn } from './log.js';
import { ChannelRegistry } from './channels.js';
import { HistoryDelivery } from './history-delivery.js';
import { LiveRegistry } from './live-registry.js';
import { Metrics } from './metrics.js';
import { Presence } from './presence.js';
import { Sessions, type Session, type SessionHooks } from './sessions.js';
import type { SocketConnection } from './socket-connection.js';

export interface Hub {
  readonly connections: Map<string, SocketConnection>;
  readonly channels: ChannelRegistry;
  readonly rules: ChannelRules;
  readonly delivery: HistoryDelivery;
  readonly presence: Presence;
  readonly sessions: Sessions;
  /** The connections' live queries (docs/live-queries.md). */
  readonly live: LiveRegistry;
  readonly settings: Pick<Required<ServerLimits>, 'maxRecoveredPublications' | 'resumeGraceSeconds' | 'maxBackpressureBytes'>;
  readonly log: LogFn;
  readonly metrics: Metrics;
  /** Cluster mode: sends the publications this node delivers to the other nodes (main/cluster.ts). */
  fanout: ((channels: readonly string[], text: string | Uint8Array, history: readonly HistoryRange[] | undefined) => void) | undefined;
}

export interface HubOptions {
  /** The store (history reads); none in unit tests of the main thread. */
  store?: SharedStore | null;
  limits?: Required<ServerLimits>;
  /** Runs a replayed keyed call whose first run ended without an outcome (the dispatcher's enqueue). */
  run?: SessionHooks['run'];
}

/** `channels`: the declared channel names, or the app's ChannelRules. */
export function createHub(channels: Iterable<string> | ChannelRules, log: LogFn, options: HubOptions = {}): Hub {
  const rules = channels instanceof ChannelRules ? channels : new ChannelRules([]);
  const declared = channels instanceof ChannelRules ? channels.declared : channels;
  const limits = options.limits ?? DEFAULT_LIMITS;
  const registry = new ChannelRegistry(declared, log, rules);
  const presence = new Presence(rules);
  const hooks: SessionHooks = {
    expired: (session: Session) => {
      for (const channel of session.channels) if (rules.rule(channel).presence) presence.leave(session.id, channel);
    },
    run: (conn, text, keys) => options.run?.(conn, text, keys),
  };
  const hub: Hub = {
    connections: new Map(),
    channels: registry,
    rules,
    delivery: new HistoryDelivery(options.store ?? null, (channel, text) => void registry.publish([channel], text), log),
    presence,
    sessions: new Sessions(limits.resumeGraceSeconds, hooks),
    live: new LiveRegistry(log),
    settings: { maxRecoveredPublications: limits.maxRecoveredPublications, resumeGraceSeconds: limits.resumeGraceSeconds, maxBackpressureBytes: limits.maxBackpressureBytes },
    log,
    metrics: new Metrics(),
    fanout: undefined,
  };
  registry.figures = {
    position: (name) => hub.delivery.info(name) ?? null,
    members: (name) => presence.count(name),
  };
  return hub;
}

/** Connections with an open socket (the rest are upgrading, or closed with work in flight). */
export function openConnectionCount(hub: Hub): number {
  let n = 0;
  for (const conn of hub.connections.values()) if (conn.open) n++;
  return n;
}
