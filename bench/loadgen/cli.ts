/**
 * @module bench/loadgen/cli
 * Run one load phase by hand, against a system this command starts or a server already running.
 *
 * @example
 * node dist/bench/loadgen/cli.js --system uws-wrap --mode echo --conns 64 --window 32 --procs 1
 * node dist/bench/loadgen/cli.js --port 5000 --pid 1234 --mode chat --conns 200 --senders 20
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PASSWORD, userEmail, type HashKind } from './dataset.js';
import { runLoad } from './driver.js';
import type { Mode } from './job.js';
import type { ProtocolName } from './protocols.js';
import { SYSTEMS, isLexiconsSystem, startSystem, type RunningSystem, type SystemName } from './servers.js';

const { values } = parseArgs({
  options: {
    system: { type: 'string' },
    port: { type: 'string' },
    pid: { type: 'string' },
    protocol: { type: 'string', default: 'lexicons' },
    mode: { type: 'string', default: 'echo' },
    procs: { type: 'string', default: '1' },
    conns: { type: 'string', default: '64' },
    senders: { type: 'string', default: '0' },
    window: { type: 'string', default: '16' },
    rate: { type: 'string', default: '0' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    users: { type: 'string', default: '0' },
    hash: { type: 'string', default: 'sha256' },
    padding: { type: 'string', default: '0' },
  },
});

const mode = values.mode as Mode;
const conns = Number(values.conns);
const users = Number(values.users) || (mode === 'echo' ? 0 : Math.min(conns, 100));
const userList = Array.from({ length: users }, (_, k) => ({ email: userEmail(k), password: PASSWORD }));
let system: RunningSystem | null = null;
let port = Number(values.port ?? 0);
let pid = values.pid === undefined ? undefined : Number(values.pid);
let protocol = values.protocol as ProtocolName;
let dataDir: string | undefined;
if (values.system !== undefined) {
  const name = values.system as SystemName;
  if (!(name in SYSTEMS)) throw new Error(`--system must be one of ${Object.keys(SYSTEMS).join(', ')}`);
  dataDir = isLexiconsSystem(name) ? await mkdtemp(join(tmpdir(), 'lexicons-cli-')) : undefined;
  system = await startSystem(name, { rows: 0, channels: 1, users: 0, hash: values.hash as HashKind, dataDir, startTimeoutMs: 60_000 });
  port = system.port;
  pid = system.pid;
  protocol = system.spec.protocol;
}
try {
  const result = await runLoad({
    mode,
    protocol,
    host: '127.0.0.1',
    port,
    procs: Number(values.procs),
    conns,
    senders: mode === 'chat' ? Number(values.senders) || Math.max(1, Math.floor(conns / 10)) : conns,
    window: Number(values.window),
    rate: Number(values.rate),
    auth: users === 0 ? 'none' : 'header',
    authHeader: 'Login',
    users: userList,
    register: userList,
    channel: 'Public',
    padding: Number(values.padding),
    storm: mode === 'connect' ? { concurrency: conns, max: 1_000_000, sourceAddresses: 1, probe: true } : undefined,
    setupConcurrency: 32,
    timeoutMs: 10_000,
    warmupMs: Number(values.warmup) * 1000,
    durationMs: Number(values.duration) * 1000,
    serverPid: pid,
  });
  console.log(JSON.stringify(result, null, 2));
} finally {
  await system?.stop();
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
}
