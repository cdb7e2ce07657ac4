/**
 * @module main/effects
 * Applies, in order, the effects a pool job returned after its commit succeeded: upgrades of
 * pending connections, admissions/rejections, direct sends, channel publishes, subscription
 * and `auth` changes, closes, run-time channel changes. Effects for a connection that has closed
 * meanwhile are dropped (uWS: never touch a socket after close).
 */
import { authenticationError, CloseCode, closeReason, errorFrame } from '../protocol.js';
import {
  OP_PUBLISH,
  OP_PUBLISH_EXCEPT,
  OP_PUBLISH_HISTORY,
  OP_SEND,
  OP_WORDS,
  opCode,
  opLength,
  opTarget,
  type Effect,
  type HistoryPublish,
  type HistoryRange,
  type PackedEffects,
} from '../job-contract.js';
import { WireCode } from '../wire.js';
import type { Hub } from './hub.js';
import { dropChannel, joinChannel, leaveChannel } from './membership.js';
import { memberId } from './presence.js';
import { SEND_DROPPED, type SocketConnection, type SocketUserData } from './socket-connection.js';


/** Completes a pending upgrade; uWS runs the `open` handler synchronously inside. */
export function completeUpgrade(conn: SocketConnection): boolean {
  const pending = conn.upgrade;
  conn.upgrade = null;
  if (conn.state !== 'upgrading' || !pending) return conn.open;
  if (pending.aborted) {
    conn.state = 'closed';
    return false;
  }
  pending.res.cork(() => {
    pending.res.upgrade({ connection: conn } satisfies SocketUserData, pending.key, pending.protocol, pending.extensions, pending.context);
  });
  return conn.open;
}

/**
 * Refuses a connection: the Errors frame, then close 1008 with the reason. `code` (sent to
 * lexicons.v1 connections): AUTH_FAILED, or why admission could not run (NOT_SAVED, TIMEOUT,
 * WORKER_FAILED: a client library retries those).
 */
export function rejectConnection(hub: Hub, conn: SocketConnection, reason: string, code: string = WireCode.AUTH_FAILED): void {
  const rejection = authenticationError(reason);
  hub.metrics.connectionsRejected++;
  if (conn.open) {
    conn.send(errorFrame([rejection.message], conn.v1 !== null ? code : undefined));
    conn.end(CloseCode.POLICY, closeReason(rejection.message));
  } else {
    conn.rejection = rejection;
  }
}

/**
 * Admits a connection; a lexicons.v1 one gets a session (main/sessions.ts) and
 * `[{"$connected": {"id": ..., "resume": "<token>", "limits": {...}}}]` (`"resumed": true|false`
 * when it asked to resume).
 */
export function admitConnection(hub: Hub, conn: SocketConnection, resumed?: boolean): void {
  conn.admitted = true;
  hub.metrics.connectionsAdmitted++;
  hub.log('CONNECT', { connection: conn.id, address: conn.address, ...(resumed === true ? { resumed } : {}) });
  if (conn.v1 === null) return;
  const session = conn.session ?? hub.sessions.open(conn);
  const token = hub.sessions.issue(session);
  const resume = resumed === undefined ? '' : `,"resumed":${resumed}`;
  conn.send(`[{"$connected":{"id":"${conn.id}","resume":"${token}"${resume}${conn.v1.connectedTail}`);
}

/**
 * A history publish: waits (returns the blocking range) until it is its channels' turn; then goes
 * to the channels whose offsets were not delivered yet (from the store after a lost result).
 */
function publishHistory(hub: Hub, channels: readonly string[], ranges: readonly HistoryRange[], text: string | Uint8Array, except: SocketConnection | undefined, remote = false, skip?: readonly string[]): HistoryRange | undefined {
  const { delivery } = hub;
  // Cluster mode: a channel without a local member has nobody to keep in order here, and this node
  // may not read its fan-out partition (its delivered offset is stale): it never waits.
  const blocking = delivery.blocking(hub.fanout === undefined ? ranges : ranges.filter((r) => hub.channels.membersOf(r.channel).size > 0));
  if (blocking !== undefined) return blocking;
  const due = channels.filter((channel) => {
    const range = ranges.find((r) => r.channel === channel);
    return range === undefined || !delivery.isDelivered(range);
  });
  if (due.length > 0) hub.metrics.fanout.observe(hub.channels.publish(due, text, except, skip));
  delivery.advance(ranges);
  if (!remote) hub.fanout?.(channels, text, ranges);
  return undefined;
}

/**
 * Applies effects in order. Returns true when done; false when a history publish had to wait
 * for its turn (main/history-delivery.ts): the rest is applied later, then `onDone` runs.
 * `remote`: publications another cluster node delivered first (main/cluster.ts), not sent on.
 */
/** Resumes once the channel delivered up to `blocking` (HistoryDelivery.wait), timing the wait (lexicons_history_wait_seconds). */
function waitForTurn(hub: Hub, blocking: HistoryRange, resume: () => void): void {
  const from = performance.now();
  hub.delivery.wait(blocking, () => {
    hub.metrics.historyWaitSeconds.observe((performance.now() - from) / 1000);
    resume();
  });
}

export function applyEffects(hub: Hub, effects: readonly Effect[], onDone?: () => void, from = 0, remote = false): boolean {
  const { connections, channels } = hub;
  for (let i = from; i < effects.length; i++) {
    const e = effects[i]!;
    switch (e.kind) {
      case 'publish': {
        const except = e.except === undefined ? undefined : connections.get(e.except);
        if (e.history === undefined) {
          hub.metrics.fanout.observe(channels.publish(e.channels, e.text, except, e.skip));
          if (!remote) hub.fanout?.(e.channels, e.text, undefined);
          break;
        }
        const blocking = publishHistory(hub, e.channels, e.history, e.text, except, remote, e.skip);
        if (blocking !== undefined) {
          waitForTurn(hub, blocking, () => {
            if (applyEffects(hub, effects, onDone, i, remote)) onDone?.();
          });
          return false;
        }
        break;
      }
      case 'send': {
        // Consecutive sends to one connection (its calls are contiguous in a batch) share one
        // cork, i.e. one write to the socket.
        let next = effects[i + 1];
        if (next?.kind !== 'send' || next.connectionId !== e.connectionId) {
          connections.get(e.connectionId)?.send(e.text);
          break;
        }
        const texts = [e.text];
        while (next?.kind === 'send' && next.connectionId === e.connectionId) {
          texts.push(next.text);
          i++;
          next = effects[i + 1];
        }
        connections.get(e.connectionId)?.sendMany(texts);
        break;
      }
      case 'subscribe': {
        const conn = connections.get(e.connectionId);
        if (conn?.open) joinChannel(hub, conn, e.channel, e.recovery);
        break;
      }
      case 'unsubscribe': {
        const conn = connections.get(e.connectionId);
        if (conn) leaveChannel(hub, conn, e.channel);
        break;
      }
      case 'auth': {
        const conn = connections.get(e.connectionId);
        if (conn) conn.auth = e.auth;
        break;
      }
      case 'meta': {
        const conn = connections.get(e.connectionId);
        if (!conn) break;
        conn.meta = e.meta;
        if (hub.rules.anyPresence) hub.presence.meta(memberId(conn), e.meta, conn.channels);
        break;
      }
      case 'close':
        connections.get(e.connectionId)?.end(e.code, closeReason(e.reason));
        break;
      case 'open': {
        const conn = connections.get(e.connectionId);
        if (conn) completeUpgrade(conn);
        break;
      }
      case 'admit': {
        const conn = connections.get(e.connectionId);
        if (!conn) break;
        if (e.ok) {
          if (conn.open) admitConnection(hub, conn, conn.resumeRefused ? false : undefined);
        } else rejectConnection(hub, conn, e.reason, e.code);
        break;
      }
      case 'createChannel':
        channels.create(e.channel);
        break;
      case 'dropChannel':
        dropChannel(hub, e.channel);
        break;
    }
  }
  return true;
}

/**
 * Applies a batch's packed effects ({@link PackedEffects}). `connections` are the job's connections
 * (op connection indexes point into it). Frames go to uWS as views over the one byte buffer the
 * worker filled: no per-frame string on this thread. Consecutive frames to one connection share
 * one cork (one write to the socket); a send that hits the backpressure limit drops the rest of
 * that run, as `SocketConnection.sendMany`. Returns true when done; false when a history publish
 * waits for its turn (main/history-delivery.ts): the rest of the batch, in order, is applied once
 * it may go, then `onDone` runs. The outcomes of keyed calls go to their sessions at the end.
 */
export function applyPacked(hub: Hub, connections: readonly SocketConnection[], packed: PackedEffects, onDone?: () => void, from = 0, fromByte = 0): boolean {
  const { ops, bytes, extra } = packed;
  const n = ops.length;
  let offset = fromByte;
  for (let i = from; i < n; i += OP_WORDS) {
    const op = opCode(ops, i);
    if (op === OP_SEND) {
      // The run of sends to this connection: one cork for all of them.
      const connectionIndex = opTarget(ops, i);
      let j = i + OP_WORDS;
      let end = offset + opLength(ops, i);
      while (j < n && opCode(ops, j) === OP_SEND && opTarget(ops, j) === connectionIndex) {
        end += opLength(ops, j);
        j += OP_WORDS;
      }
      const conn = connections[connectionIndex]!;
      const socket = conn.socket;
      if (conn.state === 'open' && socket !== null) {
        if (j === i + OP_WORDS) {
          socket.cork(() => socket.send(bytes.subarray(offset, end), false));
        } else {
          const start = offset;
          const first = i;
          socket.cork(() => {
            let at = start;
            for (let k = first; k < j; k += OP_WORDS) {
              const length = opLength(ops, k);
              if (socket.send(bytes.subarray(at, at + length), false) === SEND_DROPPED) break;
              at += length;
            }
          });
        }
      }
      offset = end;
      i = j - OP_WORDS;
    } else if (op === OP_PUBLISH) {
      const length = opLength(ops, i);
      const channels = extra[opTarget(ops, i)] as string[];
      hub.metrics.fanout.observe(hub.channels.publish(channels, bytes.subarray(offset, offset + length)));
      hub.fanout?.(channels, bytes.subarray(offset, offset + length), undefined);
      offset += length;
    } else if (op === OP_PUBLISH_EXCEPT) {
      const length = opLength(ops, i);
      const target = extra[opTarget(ops, i)] as { channels: string[]; except: number };
      hub.metrics.fanout.observe(hub.channels.publish(target.channels, bytes.subarray(offset, offset + length), connections[target.except]));
      hub.fanout?.(target.channels, bytes.subarray(offset, offset + length), undefined);
      offset += length;
    } else if (op === OP_PUBLISH_HISTORY) {
      const length = opLength(ops, i);
      const target = extra[opTarget(ops, i)] as HistoryPublish;
      const except = target.except >= 0 ? connections[target.except] : undefined;
      const blocking = publishHistory(hub, target.channels, target.ranges, bytes.subarray(offset, offset + length), except);
      if (blocking !== undefined) {
        const at = i;
        const byte = offset;
        waitForTurn(hub, blocking, () => {
          if (applyPacked(hub, connections, packed, onDone, at, byte)) onDone?.();
        });
        return false;
      }
      offset += length;
    } else {
      applyEffects(hub, [extra[opTarget(ops, i)] as Effect]);
    }
  }
  if (packed.keyed !== undefined) {
    for (const outcome of packed.keyed) {
      const session = connections[outcome.connection]?.session;
      if (session) hub.sessions.complete(session, outcome.key, outcome.items);
    }
  }
  return true;
}
