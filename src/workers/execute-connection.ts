/**
 * @module workers/execute-connection
 * Connection units of a batch: a connection attempt runs the Headers whose data the client sent
 * (each in its own savepoint; a Header that throws is rolled back and counts as a refusal), then
 * the gate, then `onConnect` for an admitted connection. The effects start with `open` (upgrade
 * the pending request) and end with `admit` (admitted, or refused with the reasons). A refused
 * connection keeps what the Headers sent but none of their subscriptions. A disconnection runs
 * `onDisconnect`.
 */
import { ErrorCode, LexiconsError } from '../errors.js';
import { decodeHeaderValue, RESERVED_ARGS } from '../protocol.js';
import { checkArgs } from './args.js';
import type { ConnectionHandle } from './handles.js';
import { logFailure, publicMessage, type BatchContext } from './batch-context.js';
import { isThenable } from './steppers.js';

function headerArgs(raw: string): Record<string, unknown> {
  const args = decodeHeaderValue(raw);
  for (const key of RESERVED_ARGS) {
    if (Object.prototype.hasOwnProperty.call(args, key)) throw new LexiconsError(ErrorCode.BAD_ARGUMENTS, `argument name ${key} is reserved`);
  }
  return args;
}

export async function runConnect(ctx: BatchContext, index: number, conn: ConnectionHandle, headerData: Record<string, string>): Promise<void> {
  const { app, recorder, progress, sv } = ctx;
  recorder.push({ kind: 'open', connectionId: conn.id });
  const from = recorder.length;
  const present = Object.entries(headerData);
  const reasons: string[] = [];
  let ok = true;
  if (present.length > 0) {
    const results: boolean[] = [];
    for (const [name, raw] of present) {
      const entry = app.headers.get(name);
      if (!entry) continue;
      try {
        const admitted = await ctx.stepper.step(conn, async (db) => {
          progress.enter(index);
          try {
            const args = checkArgs(entry.args, headerArgs(raw));
            let result: unknown = entry.instance.execute({ ...args, db, ws: conn, sv });
            if (isThenable(result)) result = await result;
            return Boolean(result);
          } finally {
            progress.leave();
          }
        });
        if (!admitted) reasons.push(`${name} rejected the credentials`);
        results.push(admitted);
      } catch (err) {
        results.push(false);
        reasons.push(`${name} failed: ${publicMessage(err)}`);
        logFailure(ctx, 'HEADER-CHECK-FAILED', { header: name, connection: conn.id, address: conn.address }, err);
      }
    }
    const gate = app.server.options.gate ?? ((rs: boolean[]) => rs.length > 0 && rs.every(Boolean));
    try {
      progress.enter(index);
      ok = Boolean(gate(results));
    } catch (err) {
      ok = false;
      reasons.push(`gate failed: ${publicMessage(err)}`);
    } finally {
      progress.leave();
    }
    if (!ok && reasons.length === 0) reasons.push('rejected by the gate');
  }
  if (ok && app.server.options.onConnect) {
    const hook = app.server.options.onConnect;
    try {
      await ctx.stepper.step(conn, async (db) => {
        progress.enter(index);
        try {
          await hook({ db, ws: conn, sv });
        } finally {
          progress.leave();
        }
      });
    } catch (err) {
      logFailure(ctx, 'ERROR', { hook: 'onConnect', connection: conn.id }, err);
    }
  }
  if (!ok) {
    recorder.dropSubscriptions(conn.id, from);
    recorder.log('HEADER-CHECK-FAILED', { connection: conn.id, address: conn.address, reason: reasons.join('; ') });
  }
  recorder.push({ kind: 'admit', connectionId: conn.id, ok, reason: ok ? '' : reasons.join('; ') });
}

export async function runDisconnect(ctx: BatchContext, index: number, conn: ConnectionHandle): Promise<void> {
  const hook = ctx.app.server.options.onDisconnect;
  if (!hook) return;
  try {
    await ctx.stepper.step(conn, async (db) => {
      ctx.progress.enter(index);
      try {
        await hook({ db, ws: conn, sv: ctx.sv });
      } finally {
        ctx.progress.leave();
      }
    });
  } catch (err) {
    logFailure(ctx, 'ERROR', { hook: 'onDisconnect', connection: conn.id }, err);
  }
}
