/**
 * @module main/cli
 * The `lexicons` command line. The only module that prints usage or calls process.exit.
 *
 *   lexicons start [app] [--workers N] [--host H] [--port P] [--data DIR] [--trust LIST]
 *                        [--fsync always|everysec|no] [--snapshot-seconds S] [--trust-proxy LIST]
 *                        [--admin-trust LIST] [--admin-port P] [--admin-host H] [--cert F --key F] [--static DIR]
 *                        [--redis URL [--node-id ID]]
 *   lexicons check [app] [--data DIR]     lexicons compact [app] [--data DIR]
 *   lexicons init [folder]
 *   lexicons shell [app] [--data DIR] [--write]     lexicons migrate [app] [--data DIR] [--dry-run]
 *   lexicons --help | --version
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { parseArgs } from 'node:util';
import { isLexiconsError, messageOf } from '../errors.js';
import { appSchema, validateFsync, validatePort, validateSnapshotSeconds, validateWorkers, type RunOverrides } from '../server.js';
import { parseAddressList, validateCluster } from '../ops-options.js';
import { checkDataFolder, compactDataFolder } from '../storage/offline.js';
import { loadApp, resolveAppPath } from '../workers/app-loader.js';
import { runShell } from './cli-shell.js';
import { migrate } from './cli-migrate.js';
import { initApp } from './init.js';

export const USAGE = `lexicons: a realtime WebSocket application server with an embedded database

Usage:
  lexicons start [app] [options]   run the server exported by the app module (default ./main)
  lexicons check [app] [--data]    check a data folder (CSV files, write-ahead log) without changing it
  lexicons compact [app] [--data]  recover a stopped server's data folder, snapshot it, delete the log
  lexicons init [folder]           create an app (main.ts, a test, package.json, tsconfig.json)
                                   in a new or empty folder (default: the current one)
  lexicons shell [app] [--data] [--write]
                                   a Node REPL on a stopped server's data folder: the Models and
                                   db (each statement a transaction; read-only without --write)
  lexicons migrate [app] [--data] [--dry-run]
                                   bring the stored data to the Models (added, removed, renamed
                                   and retyped fields): prints the plan, then applies it
  lexicons --help                  show this help
  lexicons --version               show the version

Options for start:
  -w, --workers <n>    worker threads for Signals, Headers and Tasks (default 1)
  -H, --host <host>    interface to listen on (default env HOST or localhost)
  -p, --port <port>    port, 0 for any free port (default env PORT or 5000)
  -d, --data <dir>     data folder for the CSV files (default env DATA or data/)
  -t, --trust <list>   comma-separated client addresses allowed to connect, * for any
                       (default env TRUST or *)
  --fsync <policy>     when an acknowledged write is on disk: always (fdatasync before the
                       reply), everysec (within ~1 s), no (the OS decides)
                       (default env LEXICONS_FSYNC or everysec)
  --snapshot-seconds <s>  seconds between CSV snapshots of the tables, which bound the
                       write-ahead log (default env LEXICONS_SNAPSHOT_SECONDS or 300)
  --static <dir>       serve the files of this folder on the same port, e.g. a web page
                       (default: the Server's static option, if any)
  --trust-proxy <list> reverse proxies (addresses or CIDR ranges) whose X-Forwarded-For
                       gives the client address (default env LEXICONS_TRUST_PROXY or none)
  --admin-trust <list> addresses or CIDR ranges allowed /metrics without a token
                       (default env LEXICONS_ADMIN_TRUST or localhost; token: env
                       LEXICONS_ADMIN_TOKEN, sent as Authorization: Bearer <token>)
  --admin-port <port>  serve /metrics, /health and /ready on this port only (plain HTTP)
  --admin-host <host>  interface of --admin-port (default: --host)
  --cert <file>        PEM certificate (chain): serve wss:// and https:// (with --key;
                       default env LEXICONS_TLS_CERT)
  --key <file>         PEM private key (passphrase: env LEXICONS_TLS_PASSPHRASE;
                       default env LEXICONS_TLS_KEY)
  --redis <url>        run as one node of a cluster on this Redis (redis://host:port):
                       every node holds every table, writes go through one Redis stream
                       (docs/cluster.md; default env LEXICONS_REDIS or none)
  --node-id <id>       this node's name in the cluster (default <hostname>-<pid>)

Logs: one JSON line per event on stderr (pino), a readable line when stderr is a terminal;
LEXICONS_LOG=all|errors|silent (or a pino level: debug, info, warn, error).

The app module exports the Server: export const server = new Server({ ... }).
TypeScript app modules (.ts) are loaded with tsx. SIGINT/SIGTERM stop the server gracefully
(in-flight calls finish, shutdown tasks run, tables are written to CSV). Every write is in the
write-ahead log of the data folder before it is acknowledged; a crash loses nothing acknowledged
(a power cut: nothing with --fsync always, at most ~1 s with everysec; docs/durability.md).
`;

class UsageError extends Error {}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export interface InitCommand {
  command: 'init';
  folder: string;
}

export interface StartCommand {
  command: 'start' | 'check' | 'compact' | 'shell' | 'migrate';
  app: string;
  overrides: RunOverrides;
  /** shell: --write. */
  write?: boolean;
  /** migrate: --dry-run. */
  dryRun?: boolean;
}

const COMMANDS = ['start', 'check', 'compact', 'init', 'shell', 'migrate'] as const;

/** Parses argv (without node and script); throws UsageError with an exact message. */
export function parseCommand(argv: readonly string[]): 'help' | 'version' | StartCommand | InitCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        workers: { type: 'string', short: 'w' },
        host: { type: 'string', short: 'H' },
        port: { type: 'string', short: 'p' },
        data: { type: 'string', short: 'd' },
        trust: { type: 'string', short: 't' },
        fsync: { type: 'string' },
        'snapshot-seconds': { type: 'string' },
        'trust-proxy': { type: 'string' },
        'admin-trust': { type: 'string' },
        'admin-port': { type: 'string' },
        'admin-host': { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        static: { type: 'string' },
        redis: { type: 'string' },
        'node-id': { type: 'string' },
        write: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new UsageError(messageOf(err));
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (values.version) return 'version';
  const [command, app, ...rest] = positionals;
  if (command === undefined) throw new UsageError('missing command (try: lexicons start ./main)');
  if (command !== 'run' && !(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(`unknown command ${JSON.stringify(command)} (known: ${COMMANDS.join(', ')})`);
  }
  if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])}`);
  if (command === 'init') {
    const option = Object.keys(values).find((k) => values[k as keyof typeof values] !== undefined);
    if (option !== undefined) throw new UsageError(`--${option} does not apply to init`);
    return { command: 'init', folder: app ?? '.' };
  }
  const overrides: RunOverrides = {};
  try {
    if (values.workers !== undefined) overrides.workers = validateWorkers(values.workers);
    if (values.port !== undefined) overrides.port = validatePort(values.port);
  } catch (err) {
    throw new UsageError(`--${messageOf(err)}`);
  }
  try {
    if (values.fsync !== undefined) overrides.durability = { fsync: validateFsync(values.fsync, '--fsync') };
    if (values['snapshot-seconds'] !== undefined) {
      overrides.durability = { ...overrides.durability, snapshotSeconds: validateSnapshotSeconds(values['snapshot-seconds'], '--snapshot-seconds') };
    }
  } catch (err) {
    throw new UsageError(messageOf(err));
  }
  if (values.host !== undefined) {
    if (values.host.trim() === '') throw new UsageError('--host must not be empty');
    overrides.host = values.host;
  }
  if (values.data !== undefined) {
    if (values.data.trim() === '') throw new UsageError('--data must not be empty');
    overrides.data = values.data;
  }
  if (values.static !== undefined) {
    if (values.static.trim() === '') throw new UsageError('--static must not be empty');
    overrides.static = values.static;
  }
  if (values.trust !== undefined) {
    const trust = values.trust.split(',').map((s) => s.trim()).filter(Boolean);
    if (trust.length === 0) throw new UsageError('--trust must list at least one address (or *)');
    overrides.trust = trust;
  }
  parseOpsFlags(values, overrides);
  if (values['node-id'] !== undefined && values.redis === undefined) throw new UsageError('--node-id needs --redis (it names this node of a cluster)');
  if (values.redis !== undefined) {
    try {
      overrides.cluster = validateCluster({ redis: values.redis, ...(values['node-id'] !== undefined ? { nodeId: values['node-id'] } : {}) }, '--redis');
    } catch (err) {
      throw new UsageError(messageOf(err).replace('--redis.redis', '--redis').replace('--redis.nodeId', '--node-id'));
    }
  }
  const name = command === 'run' ? 'start' : (command as StartCommand['command']);
  const own = { shell: 'write', migrate: 'dry-run' } as const;
  const serverOnly = ['workers', 'host', 'port', 'trust', 'fsync', 'snapshot-seconds', 'trust-proxy', 'admin-trust', 'admin-port', 'admin-host', 'cert', 'key', 'static', 'redis', 'node-id'] as const;
  const extra = [...(name === 'start' ? [] : serverOnly), ...(['write', 'dry-run'] as const).filter((k) => own[name as keyof typeof own] !== k)].find((k) => values[k] !== undefined);
  if (extra) throw new UsageError(`--${extra} does not apply to ${name}`);
  return { command: name, app: app ?? './main', overrides, ...(values.write ? { write: true } : {}), ...(values['dry-run'] ? { dryRun: true } : {}) };
}

/** The operations flags (proxies, admin access, TLS) into `overrides`; UsageError with the exact message. */
function parseOpsFlags(values: Partial<Record<'trust-proxy' | 'admin-trust' | 'admin-port' | 'admin-host' | 'cert' | 'key', string>>, overrides: RunOverrides): void {
  try {
    if (values['trust-proxy'] !== undefined) overrides.trustProxy = parseAddressList(values['trust-proxy'], '--trust-proxy');
    if (values['admin-trust'] !== undefined) overrides.adminTrust = parseAddressList(values['admin-trust'], '--admin-trust', true);
    if (values['admin-port'] !== undefined) overrides.adminPort = validatePort(values['admin-port'], '--admin-port');
    if (values.cert !== undefined || values.key !== undefined) {
      if (values.cert === undefined || values.key === undefined) throw new UsageError(`--cert and --key go together (got only --${values.cert === undefined ? 'key' : 'cert'})`);
      for (const flag of ['cert', 'key'] as const) if (values[flag]!.trim() === '') throw new UsageError(`--${flag} must not be empty`);
      const passphrase = process.env.LEXICONS_TLS_PASSPHRASE;
      overrides.tls = { cert: values.cert, key: values.key, ...(passphrase !== undefined ? { passphrase } : {}) };
    }
  } catch (err) {
    throw err instanceof UsageError ? err : new UsageError(messageOf(err));
  }
  if (values['admin-host'] !== undefined) {
    if (values['admin-host'].trim() === '') throw new UsageError('--admin-host must not be empty');
    overrides.adminHost = values['admin-host'];
  }
}

async function start(command: StartCommand): Promise<number> {
  const appPath = resolveAppPath(command.app);
  const { server } = await loadApp(appPath);
  if (command.command === 'start') {
    const running = await server.run({ ...command.overrides, appPath });
    await running.closed;
    return 0;
  }
  const dir = server.resolve(command.overrides).data;
  const schema = appSchema(server.components);
  if (command.command === 'shell') {
    await runShell({ dir, schema, write: command.write === true });
    return 0;
  }
  if (command.command === 'migrate') return migrate(dir, schema, command.dryRun === true);
  if (command.command === 'check') {
    const report = await checkDataFolder(dir, schema);
    const { dir: folder, ok, problems, repairs, replayable, tables, lockedBy } = report;
    process.stdout.write(`${JSON.stringify({ dir: folder, ok, problems, repairs, replayable, tables, lockedBy }, null, 2)}\n`);
    return ok ? 0 : 1;
  }
  const report = await compactDataFolder(dir, schema);
  const summary = {
    dir: report.recovery.dir,
    replayed: report.recovery.replayed,
    truncatedBytes: report.recovery.truncatedBytes,
    commitId: report.snapshot.commitId,
    tables: Object.fromEntries(Object.entries(report.snapshot.tables).map(([t, v]) => [t, v.rows])),
    removedSegments: report.removedSegments.length,
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  return 0;
}

async function init(command: InitCommand): Promise<number> {
  const { dir, files } = await initApp(command.folder);
  const cd = relative(process.cwd(), dir);
  process.stdout.write(`Created ${cd === '' ? 'the app' : cd}: ${files.join(', ')}\n\nNext:\n${cd === '' ? '' : `  cd ${cd}\n`}  npm install\n  npm test     # test/app.test.ts, with lexicons/testing\n  npm start    # ws://localhost:5000\n`);
  return 0;
}

/** Runs the CLI and exits the process with its status. */
export async function run(argv: readonly string[]): Promise<never> {
  let code: number;
  try {
    const command = parseCommand(argv);
    if (command === 'help') {
      process.stdout.write(USAGE);
      code = 0;
    } else if (command === 'version') {
      process.stdout.write(`${version()}\n`);
      code = 0;
    } else if (command.command === 'init') {
      code = await init(command);
    } else {
      code = await start(command);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`lexicons: ${err.message}\nRun \`lexicons --help\` for usage.\n`);
      code = 2;
    } else {
      const message = isLexiconsError(err) ? `${err.code}: ${err.message}` : ((err as Error)?.stack ?? String(err));
      process.stderr.write(`lexicons: ${message}\n`);
      code = 1;
    }
  }
  process.exit(code);
}
