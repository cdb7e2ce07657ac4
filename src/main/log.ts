/**
 * @module main/log
 * The server's log: every event `(status, data)` goes to the app's `onLog(status, data)` hook,
 * unchanged, or by default through pino to stderr: one JSON line per event with pino's fields
 * (`level`, `time`, `pid`, `hostname`, `msg`) plus `status` and the event's data, or, when
 * stderr is a terminal, one readable line (pino-pretty, loaded only then). Events from workers
 * are forwarded here. A hook that throws is reported once per status, never crashes the server.
 *
 * Each status has a pino level (`STATUS_LEVELS`: connections `debug`, lifecycle `info`, refusals
 * and limits `warn`, failures `error`). Env LEXICONS_LOG picks the lowest level written: `all`
 * (default: everything), `errors` (= `error`), `silent`, or a pino level name; env
 * LEXICONS_LOG_FORMAT forces `json` or `pretty`. Nothing logs per call or per frame: the events
 * are per connection, per lifecycle step, or per failure.
 */
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Level, type Logger } from 'pino';
import { ErrorCode, LexiconsError, messageOf } from '../errors.js';
import type { LogStatus } from '../server.js';

export type LogFn = (status: LogStatus, data: Record<string, unknown>) => void;

/** The pino level of each log status. */
export const STATUS_LEVELS: Readonly<Record<LogStatus, Level>> = {
  START: 'info',
  LISTEN: 'info',
  SHUTDOWN: 'info',
  SNAPSHOT: 'info',
  CLUSTER: 'info',
  TASK: 'info',
  CONNECT: 'debug',
  DISCONNECT: 'debug',
  SIGNAL: 'debug',
  BROADCAST: 'debug',
  'HEADER-CHECK-FAILED': 'warn',
  'UNTRUSTED-SOURCE-DENIED': 'warn',
  'ORIGIN-DENIED': 'warn',
  'CHANNEL-NOT-FOUND': 'warn',
  LIMIT: 'warn',
  'SIGNAL-ERROR': 'error',
  'TASK-ERROR': 'error',
  'WORKER-ERROR': 'error',
  'PROTOCOL-ERROR': 'error',
  ERROR: 'error',
};

const LOG_SETTINGS: Readonly<Record<string, Level | 'silent'>> = {
  all: 'trace',
  errors: 'error',
  silent: 'silent',
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  error: 'error',
  fatal: 'fatal',
};

/** The pino level LEXICONS_LOG asks for; an OPTION error names the accepted values. */
export function logLevel(env: NodeJS.ProcessEnv = process.env): Level | 'silent' {
  const value = env.LEXICONS_LOG ?? 'all';
  const level = Object.hasOwn(LOG_SETTINGS, value) ? LOG_SETTINGS[value] : undefined;
  if (level === undefined) throw new LexiconsError(ErrorCode.OPTION, `LEXICONS_LOG must be one of ${Object.keys(LOG_SETTINGS).join(', ')}, got ${JSON.stringify(value)}`);
  return level;
}

/** Pretty when LEXICONS_LOG_FORMAT says so, else when stderr is a terminal. */
function wantsPretty(env: NodeJS.ProcessEnv): boolean {
  const format = env.LEXICONS_LOG_FORMAT;
  if (format === undefined) return process.stderr.isTTY === true;
  if (format === 'json' || format === 'pretty') return format === 'pretty';
  throw new LexiconsError(ErrorCode.OPTION, `LEXICONS_LOG_FORMAT must be json or pretty, got ${JSON.stringify(format)}`);
}

/** Writes to fd 2, synchronously: a line is out before the process may exit. */
const stderr: DestinationStream = { write: (line: string) => void writeSync(2, line) };

/** pino-pretty's formatter, one line per event: `[12:00:00.000] INFO: LISTEN {"port":5000,...}`. */
function prettyStream(out: DestinationStream): DestinationStream {
  const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
  const format = prettyFactory({
    colorize: out === stderr && process.stderr.isTTY === true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,status',
    messageFormat: (log) => (log.msg === log.status ? String(log.status) : `${String(log.status)} ${String(log.msg)}`),
  });
  return { write: (line: string) => out.write(format(line)) };
}

export interface LoggerOptions {
  env?: NodeJS.ProcessEnv;
  /** Where the default logger writes (tests); default stderr. */
  destination?: DestinationStream;
  /** Force the pretty format (default: LEXICONS_LOG_FORMAT, else whether stderr is a TTY). */
  pretty?: boolean;
}

/** The default logger: pino over stderr, JSON or pretty. */
export function createPino(options: LoggerOptions = {}): Logger {
  const env = options.env ?? process.env;
  const out = options.destination ?? stderr;
  const pretty = options.pretty ?? wantsPretty(env);
  return pino({ level: logLevel(env), timestamp: pino.stdTimeFunctions.isoTime }, pretty ? prettyStream(out) : out);
}

/** One event as a pino record: the message (a `message` string, else the status) becomes `msg`. */
function write(logger: Logger, status: LogStatus, data: Record<string, unknown>): void {
  const level = STATUS_LEVELS[status] ?? 'info';
  if (!logger.isLevelEnabled(level)) return;
  const { message, ...rest } = data;
  const text = typeof message === 'string' ? message : status;
  try {
    logger[level]({ status, ...(typeof message === 'string' ? rest : data) }, text);
  } catch {
    logger[level]({ status }, text);
  }
}

export function createLogger(onLog?: LogFn, options: LoggerOptions = {}): LogFn {
  if (!onLog) {
    const logger = createPino(options);
    return (status, data) => write(logger, status, data);
  }
  let fallback: Logger | undefined;
  const failed = new Set<string>();
  return (status, data) => {
    try {
      onLog(status, data);
    } catch (err) {
      if (!failed.has(status)) {
        failed.add(status);
        fallback ??= pino({ level: 'error', timestamp: pino.stdTimeFunctions.isoTime }, options.destination ?? stderr);
        write(fallback, 'ERROR', { message: `onLog threw for status ${status}: ${messageOf(err)}` });
      }
    }
  };
}
