/**
 * @module main/log
 * The server's log: every event goes to the app's `onLog(status, data)` hook, or by default to
 * stderr as one JSON line `{"time": ..., "status": "LISTEN", ...}`. Events from workers are
 * forwarded here. A hook that throws is reported once per status, never crashes the server.
 * Env LEXICONS_LOG tunes the default logger: `all` (default), `errors` (error statuses only),
 * `silent`.
 */
import { messageOf } from '../errors.js';
import type { LogStatus } from '../server.js';

export type LogFn = (status: LogStatus, data: Record<string, unknown>) => void;

export function defaultLog(status: LogStatus, data: Record<string, unknown>): void {
  let line: string;
  try {
    line = JSON.stringify({ time: new Date().toISOString(), status, ...data });
  } catch {
    line = JSON.stringify({ time: new Date().toISOString(), status, message: String(data.message ?? '') });
  }
  process.stderr.write(line + '\n');
}

const ERROR_STATUSES: ReadonlySet<LogStatus> = new Set(['SIGNAL-ERROR', 'TASK-ERROR', 'WORKER-ERROR', 'PROTOCOL-ERROR', 'ERROR']);

export function createLogger(onLog?: LogFn, env: NodeJS.ProcessEnv = process.env): LogFn {
  if (!onLog) {
    const level = env.LEXICONS_LOG ?? 'all';
    if (level === 'silent') return () => undefined;
    if (level === 'errors') return (status, data) => (ERROR_STATUSES.has(status) ? defaultLog(status, data) : undefined);
    return defaultLog;
  }
  const failed = new Set<string>();
  return (status, data) => {
    try {
      onLog(status, data);
    } catch (err) {
      if (!failed.has(status)) {
        failed.add(status);
        defaultLog('ERROR', { message: `onLog threw for status ${status}: ${messageOf(err)}` });
      }
    }
  };
}
