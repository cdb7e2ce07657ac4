/**
 * @module main/effects
 * Applies, in order, the effects a pool job returned after its commit succeeded: upgrades of
 * pending connections, admissions/rejections, direct sends, channel publishes, subscription
 * and `auth` changes, closes, run-time channel changes. Effects for a connection that has closed
 * meanwhile are dropped (uWS: never touch a socket after close).
 */
import { authenticationError, CloseCode, closeReason, errorFrame } from '../protocol.js';
import { OP_PUBLISH, OP_PUBLISH_EXCEPT, OP_SEND, OP_WORDS, opCode, opLength, opTarget, type Effect, type PackedEffects } from '../job-contract.js';
import { WireCode } from '../wire.js';
import type { Hub } from './hub.js';
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

/** Admits a connection; a lexicons.v1 one gets `[{"$connected": {"id": ..., "limits": {...}}}]`. */
export function admitConnection(hub: Hub, conn: SocketConnection): void {
  conn.admitted = true;
  hub.metrics.connectionsAdmitted++;
  hub.log('CONNECT', { connection: conn.id, address: conn.address });
  if (conn.v1 !== null) conn.send(`[{"$connected":{"id":"${conn.id}"${conn.v1.connectedTail}`);
}

export function applyEffects(hub: Hub, effects: readonly Effect[]): void {
  const { connections, channels } = hub;
  for (let i = 0; i < effects.length; i++) {
    const e = effects[i]!;
    switch (e.kind) {
      case 'publish':
        hub.metrics.fanout.observe(channels.publish(e.channels, e.text, e.except === undefined ? undefined : connections.get(e.except)));
        break;
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
        if (conn?.open) channels.subscribe(conn, e.channel);
        break;
      }
      case 'unsubscribe': {
        const conn = connections.get(e.connectionId);
        if (conn) channels.unsubscribe(conn, e.channel);
        break;
      }
      case 'auth': {
        const conn = connections.get(e.connectionId);
        if (conn) conn.auth = e.auth;
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
          if (conn.open) admitConnection(hub, conn);
        } else rejectConnection(hub, conn, e.reason, e.code);
        break;
      }
      case 'createChannel':
        channels.create(e.channel);
        break;
      case 'dropChannel':
        channels.drop(e.channel);
        break;
    }
  }
}

/**
 * Applies a batch's packed effects ({@link PackedEffects}). `connections` are the job's connections
 * (op connection indexes point into it). Frames go to uWS as views over the one byte buffer the
 * worker filled: no per-frame string on this thread. Consecutive frames to one connection share
 * one cork (one write to the socket); a send that hits the backpressure limit drops the rest of
 * that run, as `SocketConnection.sendMany`.
 */
export function applyPacked(hub: Hub, connections: readonly SocketConnection[], packed: PackedEffects): void {
  const { ops, bytes, extra } = packed;
  const n = ops.length;
  let offset = 0;
  for (let i = 0; i < n; i += OP_WORDS) {
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
          const from = i;
          const start = offset;
          socket.cork(() => {
            let at = start;
            for (let k = from; k < j; k += OP_WORDS) {
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
      hub.metrics.fanout.observe(hub.channels.publish(extra[opTarget(ops, i)] as string[], bytes.subarray(offset, offset + length)));
      offset += length;
    } else if (op === OP_PUBLISH_EXCEPT) {
      const length = opLength(ops, i);
      const target = extra[opTarget(ops, i)] as { channels: string[]; except: number };
      hub.metrics.fanout.observe(hub.channels.publish(target.channels, bytes.subarray(offset, offset + length), connections[target.except]));
      offset += length;
    } else {
      applyEffects(hub, [extra[opTarget(ops, i)] as Effect]);
    }
  }
}
