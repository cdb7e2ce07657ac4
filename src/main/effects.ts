/**
 * @module main/effects
 * Applies, in order, the effects a pool job returned after its commit succeeded: upgrades of
 * pending connections, admissions/rejections, direct sends, channel publishes, subscription
 * and `auth` changes, closes, run-time channel changes. Effects for a connection that has closed
 * meanwhile are dropped (uWS: never touch a socket after close).
 */
import type { ServerLimits } from '../server.js';
import { CloseCode, closeReason, errorFrame } from '../protocol.js';
import { OP_PUB, OP_SEND, type Effect, type PackedEffects } from '../workers/jobs.js';
import type { ChannelRegistry } from './channels.js';
import type { Conn } from './connection.js';
import type { LogFn } from './log.js';
import type { Metrics } from './metrics.js';

/** Main-thread state shared by the dispatcher, the effects and the socket handlers. */
export interface Hub {
  readonly conns: Map<string, Conn>;
  readonly channels: ChannelRegistry;
  readonly log: LogFn;
  readonly metrics: Metrics;
  readonly limits: Required<ServerLimits>;
}

/** Completes a pending upgrade; uWS runs the `open` handler synchronously inside. */
export function completeUpgrade(conn: Conn): boolean {
  const pending = conn.upgrade;
  conn.upgrade = null;
  if (conn.state !== 'upgrading' || !pending) return conn.open;
  if (pending.aborted) {
    conn.state = 'closed';
    return false;
  }
  pending.res.cork(() => {
    pending.res.upgrade({ conn }, pending.key, pending.protocol, pending.extensions, pending.context);
  });
  return conn.open;
}

/** Refuses a connection: the Errors frame, then close 1008 with the reason. */
export function rejectConnection(hub: Hub, conn: Conn, reason: string): void {
  const text = `Authentication failed: ${reason}`;
  hub.metrics.connectionsRejected++;
  if (conn.open) {
    conn.send(errorFrame([text]));
    conn.end(CloseCode.POLICY, closeReason(text));
  } else {
    conn.rejection = text;
  }
}

export function admitConnection(hub: Hub, conn: Conn): void {
  conn.admitted = true;
  hub.metrics.connectionsTotal++;
  hub.log('CONNECT', { connection: conn.id, address: conn.address });
}

export function applyEffects(hub: Hub, effects: readonly Effect[]): void {
  const { conns, channels } = hub;
  for (let i = 0; i < effects.length; i++) {
    const e = effects[i]!;
    switch (e.t) {
      case 'pub':
        channels.publish(e.ch, e.text);
        break;
      case 'send': {
        // Consecutive sends to one connection (its calls are contiguous in a batch) share one
        // cork, i.e. one write to the socket.
        let next = effects[i + 1];
        if (next?.t !== 'send' || next.c !== e.c) {
          conns.get(e.c)?.send(e.text);
          break;
        }
        const texts = [e.text];
        while (next?.t === 'send' && next.c === e.c) {
          texts.push(next.text);
          i++;
          next = effects[i + 1];
        }
        conns.get(e.c)?.sendMany(texts);
        break;
      }
      case 'sub': {
        const conn = conns.get(e.c);
        if (conn?.open) channels.subscribe(conn, e.ch);
        break;
      }
      case 'unsub': {
        const conn = conns.get(e.c);
        if (conn) channels.unsubscribe(conn, e.ch);
        break;
      }
      case 'auth': {
        const conn = conns.get(e.c);
        if (conn) conn.auth = e.v;
        break;
      }
      case 'close':
        conns.get(e.c)?.end(e.code, closeReason(e.reason));
        break;
      case 'open': {
        const conn = conns.get(e.c);
        if (conn) completeUpgrade(conn);
        break;
      }
      case 'admit': {
        const conn = conns.get(e.c);
        if (!conn) break;
        if (e.ok) {
          if (conn.open) admitConnection(hub, conn);
        }
        else rejectConnection(hub, conn, e.reason);
        break;
      }
      case 'mkch':
        channels.create(e.ch);
        break;
      case 'rmch':
        channels.drop(e.ch);
        break;
    }
  }
}

/**
 * Applies a batch's packed effects ({@link PackedEffects}). `conns` are the job's connections
 * (op connection indexes point into it). Frames go to uWS as views over the one byte buffer the
 * worker filled: no per-frame string on this thread. Consecutive frames to one connection share
 * one cork (one write to the socket); a send that hits the backpressure limit drops the rest of
 * that run, as `Conn.sendMany`.
 */
export function applyPacked(hub: Hub, conns: readonly Conn[], packed: PackedEffects): void {
  const { ops, out, extra } = packed;
  const n = ops.length;
  let offset = 0;
  for (let i = 0; i < n; i += 3) {
    const op = ops[i]!;
    if (op === OP_SEND) {
      const c = ops[i + 1]!;
      let j = i + 3;
      let end = offset + ops[i + 2]!;
      while (j < n && ops[j] === OP_SEND && ops[j + 1] === c) {
        end += ops[j + 2]!;
        j += 3;
      }
      const conn = conns[c]!;
      const ws = conn.ws;
      if (conn.state === 'open' && ws !== null) {
        if (j === i + 3) {
          ws.cork(() => ws.send(out.subarray(offset, end), false));
        } else {
          const from = i;
          const start = offset;
          ws.cork(() => {
            let at = start;
            for (let k = from; k < j; k += 3) {
              const len = ops[k + 2]!;
              if (ws.send(out.subarray(at, at + len), false) === 2) break;
              at += len;
            }
          });
        }
      }
      offset = end;
      i = j - 3;
    } else if (op === OP_PUB) {
      const len = ops[i + 2]!;
      hub.channels.publish(extra[ops[i + 1]!] as string[], out.subarray(offset, offset + len));
      offset += len;
    } else {
      applyEffects(hub, [extra[ops[i + 1]!] as Effect]);
    }
  }
}
