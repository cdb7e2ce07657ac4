/**
 * The log (src/main/log.ts): pino JSON lines (level, time, pid, hostname, msg, status, data),
 * LEXICONS_LOG levels, the pretty one-line format, the onLog hook receiving events unchanged, and
 * the CLI's stderr lines.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger, logLevel, STATUS_LEVELS } from '../../src/main/log.js';
import type { LogStatus } from '../../src/server.js';
import { CHAT_APP, spawnCli } from '../helpers/server.js';
import { tempDir } from '../helpers/temp-dir.js';

function capture(env: NodeJS.ProcessEnv, pretty = false): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const log = createLogger(undefined, { env, pretty, destination: { write: (line: string) => void lines.push(line) } });
  return { lines, log };
}

describe('the default log (pino)', () => {
  it('writes one JSON line per event with level, time, pid, hostname, msg, status and the data', () => {
    const { lines, log } = capture({ LEXICONS_LOG: 'all' });
    log('LISTEN', { host: '127.0.0.1', port: 5000 });
    log('ERROR', { message: 'snapshot failed', code: 'IO' });
    log('CONNECT', { connection: 'c1', address: '10.0.0.1' });
    assert.equal(lines.length, 3);
    assert.ok(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n')), 'one line each');
    const [listen, error, connect] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual({ ...listen, time: 'T', hostname: 'H' }, { level: 30, time: 'T', pid: process.pid, hostname: 'H', status: 'LISTEN', host: '127.0.0.1', port: 5000, msg: 'LISTEN' });
    assert.match(String(listen!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual({ ...error, time: 'T', hostname: 'H' }, { level: 50, time: 'T', pid: process.pid, hostname: 'H', status: 'ERROR', code: 'IO', msg: 'snapshot failed' });
    assert.equal(connect!.level, 20);
  });

  it('LEXICONS_LOG picks the lowest level: all, errors, silent, or a pino level; anything else is refused', () => {
    const statuses: LogStatus[] = ['CONNECT', 'LISTEN', 'LIMIT', 'SIGNAL-ERROR'];
    const written = (value: string) => {
      const { lines, log } = capture({ LEXICONS_LOG: value });
      for (const status of statuses) log(status, {});
      return lines.map((l) => (JSON.parse(l) as { status: string }).status);
    };
    assert.deepEqual(written('all'), statuses);
    assert.deepEqual(written('info'), ['LISTEN', 'LIMIT', 'SIGNAL-ERROR']);
    assert.deepEqual(written('warn'), ['LIMIT', 'SIGNAL-ERROR']);
    assert.deepEqual(written('errors'), ['SIGNAL-ERROR']);
    assert.deepEqual(written('silent'), []);
    assert.equal(logLevel({}), 'trace', 'default: all');
    assert.throws(() => logLevel({ LEXICONS_LOG: 'loud' }), { code: 'OPTION', message: 'LEXICONS_LOG must be one of all, errors, silent, trace, debug, info, warn, error, fatal, got "loud"' });
    assert.throws(() => createLogger(undefined, { env: { LEXICONS_LOG_FORMAT: 'xml' } }), { code: 'OPTION', message: 'LEXICONS_LOG_FORMAT must be json or pretty, got "xml"' });
    for (const status of Object.keys(STATUS_LEVELS) as LogStatus[]) assert.ok(['debug', 'info', 'warn', 'error'].includes(STATUS_LEVELS[status]), status);
  });

  it('the pretty format (a terminal, or LEXICONS_LOG_FORMAT=pretty) is one readable line per event', () => {
    const { lines, log } = capture({ LEXICONS_LOG: 'all' }, true);
    log('LISTEN', { port: 5000 });
    log('WORKER-ERROR', { message: 'worker thread 3 exited', threadId: 3 });
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: LISTEN \{"port":5000\}\n$/);
    assert.match(lines[1]!, /^\[\d\d:\d\d:\d\d\.\d{3}\] ERROR: WORKER-ERROR worker thread 3 exited \{"threadId":3\}\n$/);
  });

  it('an onLog hook receives (status, data) unchanged and nothing is written', () => {
    const lines: string[] = [];
    const seen: Array<[LogStatus, Record<string, unknown>]> = [];
    const log = createLogger((status, data) => void seen.push([status, data]), { env: { LEXICONS_LOG: 'all' }, destination: { write: (l: string) => void lines.push(l) } });
    const data = { message: 'kept as is', connection: 'c1' };
    log('SIGNAL-ERROR', data);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]![0], 'SIGNAL-ERROR');
    assert.equal(seen[0]![1], data);
    assert.deepEqual(lines, []);
  });
});

describe('the CLI log', { timeout: 30_000 }, () => {
  it('writes pino JSON lines on stderr (the child pid, msg, status)', async () => {
    await using data = await tempDir();
    await using srv = await spawnCli([CHAT_APP, '--port', '0', '--host', '127.0.0.1', '--data', data.path]);
    const listen = srv
      .output()
      .split('\n')
      .filter((l) => l.includes('"status":"LISTEN"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)[0]!;
    assert.equal(listen.level, 30);
    assert.equal(listen.pid, srv.child.pid);
    assert.equal(listen.msg, 'LISTEN');
    assert.equal(listen.port, srv.port);
    assert.equal((await srv.stop()).code, 0);
  });
});
