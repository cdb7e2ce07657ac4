/**
 * @module main/cli-shell
 * `lexicons shell [app] --data DIR [--write]`: a Node REPL on a stopped server's data folder, with
 * the app's Models (by name) and `db` bound.
 *
 * - Each statement runs in its own transaction; `db` is that transaction's handle (the same API
 *   as in Signals) and is valid until the statement ends (awaits included).
 * - Read-only by default: a statement that writes is rolled back and answered with an error.
 *   With `--write` each statement commits when it ends without throwing (fsync before the result
 *   prints) and a statement that throws changes nothing; at exit a snapshot is written.
 * - It takes the data folder's lock, like a server: while a server runs on the folder it refuses
 *   (attaching to a live server is not supported; its admin page shows the rows).
 */
import { resolve } from 'node:path';
import repl, { type REPLEval, type REPLServer } from 'node:repl';
import type { Readable, Writable } from 'node:stream';
import { runOnMainThread } from '../database.js';
import { ErrorCode, LexiconsError } from '../errors.js';
import type { Db } from '../storage/api.js';
import { folderLockHolder } from '../storage/folder-lock.js';
import { openDataFolder } from '../storage/recovery.js';
import type { Schema } from '../storage/schema.js';
import { snapshotDataFolder } from '../storage/snapshot.js';

export interface ShellOptions {
  dir: string;
  schema: Schema;
  write: boolean;
  input?: Readable;
  output?: Writable;
}

/** Why `shell` (or `migrate`) will not open a folder a server holds: the exact message. */
export async function refuseLiveFolder(dir: string, command: string): Promise<void> {
  const pid = await folderLockHolder(resolve(dir));
  if (pid === null) return;
  throw new LexiconsError(
    ErrorCode.IO,
    `the data folder ${resolve(dir)} is in use by a running server (pid ${pid}); lexicons ${command} works on a stopped server's folder: stop the server first` +
      (command === 'shell' ? ' (to look at a live server\'s rows, use its admin page, /admin)' : ''),
  );
}

const NO_DB: Db = new Proxy({} as Db, {
  get() {
    throw new LexiconsError(ErrorCode.TXN, 'db is bound to the statement that was running: use it within one statement (await included)');
  },
});

/** Runs the shell until its input ends or `.exit`; resolves once the folder is closed. */
export async function runShell(options: ShellOptions): Promise<void> {
  const { dir, schema, write } = options;
  await refuseLiveFolder(dir, 'shell');
  const { store, wal, report } = await openDataFolder(schema, dir, { fsync: write ? 'always' : 'no' });
  const output = options.output ?? process.stdout;
  const rows = Object.entries(store.stats().tables).map(([name, t]) => `${name} (${t.rows})`).join(', ');
  output.write(`lexicons shell on ${report.dir}, ${write ? 'read-write: each statement is a transaction' : 'read-only (--write to change data)'}\nModels: ${rows || 'none'}; db: the statement's transaction\n`);

  const server: REPLServer = repl.start({ prompt: 'lexicons> ', input: options.input ?? process.stdin, output, ignoreUndefined: true, useGlobal: false });
  for (const table of schema.tables) if (table.model) server.context[table.name] = table.model;
  server.context.db = NO_DB;
  const evaluate = server.eval;
  const inStatement = (db: Db, code: string, context: object, file: string): Promise<unknown> =>
    new Promise((done, fail) => {
      server.context.db = db;
      evaluate.call(server, code, context, file, (err, result) => (err ? fail(err) : done(result)));
    });
  const statement: REPLEval = (code, context, file, callback) => {
    const finish = (err: Error | null, result?: unknown): void => {
      server.context.db = NO_DB;
      callback(err, result);
    };
    if (write) {
      runOnMainThread(store, wal, (db) => inStatement(db, code, context, file)).then((result) => finish(null, result), finish);
      return;
    }
    const txn = store.begin();
    inStatement(txn.db, code, context, file).then(
      (result) => {
        const wrote = txn.savepoint() > 0;
        txn.abort();
        if (wrote) finish(new LexiconsError(ErrorCode.TXN, 'read-only shell: the writes of this statement were rolled back (start the shell with --write to change data)'));
        else finish(null, result);
      },
      (err: Error) => {
        txn.abort();
        finish(err);
      },
    );
  };
  (server as { eval: REPLEval }).eval = statement;

  await new Promise<void>((done) => server.once('exit', done));
  if (write) await snapshotDataFolder(store, wal, report.dir, { csv: true }); // as a shutdown does
  await wal.close();
}
