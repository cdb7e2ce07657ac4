/**
 * @module main/log
 * The server's log: every event goes to the app's `onLog(status, data)` hook, or by default to
 * stderr as one JSON line `{"time": ..., "status": "LISTEN", ...}`. Events from workers are
 * forwarded here. A hook that throws is reported once per status, never crashes the server.
 */
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

export function createLogger(onLog?: LogFn): LogFn {
  if (!onLog) return defaultLog;
  const failed = new Set<string>();
  return (status, data) => {
    try {
      onLog(status, data);
    } catch (err) {
      if (!failed.has(status)) {
        failed.add(status);
        defaultLog('ERROR', { message: `onLog threw for status ${status}: ${(err as Error)?.message ?? String(err)}` });
      }
    }
  };
}
