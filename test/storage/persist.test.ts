/**
 * The data folder end to end through the real SharedStore: save/load round trips, files of the
 * original Python lexicons, schema drift (added fields, unknown columns), malformed files that
 * stop the start without losing data, crash safety of saves, and streaming of 1,000,000 rows.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isLexiconsError } from '../../src/errors.js';
import { legacyNames, loadDataFolder, saveDataFolder, type LoadOptions } from '../../src/storage/persist.js';
import { Model, compileSchema, field, type ModelClass } from '../../src/storage/schema.js';
import { SharedStore } from '../../src/storage/store.js';
import { FIXTURES, schema } from '../fixtures/csv/models.js';
import { tempDir } from '../helpers/temp-dir.js';

const CRASH_WRITER = fileURLToPath(new URL('../fixtures/csv/crash-writer.js', import.meta.url));

const newStore = (models?: ModelClass[]) => SharedStore.create(models ? compileSchema(models) : schema);

function rowsOf(store: SharedStore, table: string): Array<Record<string, unknown>> {
  return [...store.scan(table)].map((r) => ({ ...r })).sort((a, b) => (a.pk < b.pk ? -1 : 1));
}

async function snapshotDir(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).sort()) out.set(name, await readFile(join(dir, name)));
  return out;
}

const TRICKY = ['', ' ', 'comma, "quotes"', 'new\nline', 'crlf\r\nline', 'ünïcödé ✓ 🎉', "=cmd|' /C calc'!A0", '\uFEFFbom first', 'None', 'True'];

function sampleRows() {
  const users = [
    { pk: 'u1', email: 'ada@example.com', password: 'hash1' },
    { pk: 'u2', email: '', password: 'comma, "quotes"' },
  ];
  const messages = TRICKY.map((content, i) => ({ pk: `m${i}`, author: i % 3 === 0 ? null : 'u1', channel: i % 2 ? 'Public' : 'Private', content, timestamp: i === 0 ? -0 : 1637000000.123456 + i / 7 }));
  const items = [
    { pk: 'i1', title: TRICKY[2]!, count: -3, score: 0.1 + 0.2, flag: true, tags: TRICKY, nums: [1, -2], labels: ['b', 'a'], ratios: [-0, 1e21, 5e-324], flags: [true, false], note: '', owner: 'u2' },
    { pk: 'i2', title: '', count: 0, score: 0, flag: false, tags: [], nums: [], labels: null, ratios: [], flags: [], note: null, owner: null },
    { pk: 'i3', title: 'x', count: 9007199254740991, score: Number.MAX_VALUE, flag: false, tags: [''], nums: [0], labels: [], ratios: [0.5], flags: [], note: '\uFEFF', owner: 'u1' },
  ];
  return { users, messages, items };
}

describe('save and load', () => {
  test('every field kind round-trips through save and load (null vs "", -0, unicode, formulas, BOM cells)', async () => {
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    const a = newStore();
    const { users, messages, items } = sampleRows();
    a.bulkLoad('User', users);
    a.bulkLoad('ChatMessage', messages);
    a.bulkLoad('Item', items);
    const saved = await saveDataFolder(a, dir);
    assert.deepEqual(saved.tables.map((t) => [t.table, t.rows]), [['User', 2], ['ChatMessage', TRICKY.length], ['Item', 3]]);
    assert.deepEqual((await readdir(dir)).sort(), ['ChatMessage.csv', 'Item.csv', 'User.csv']);
    assert.equal((await readFile(join(dir, 'User.csv'), 'utf8')).split('\n')[0], 'pk,email,password');

    const b = newStore();
    const report = await loadDataFolder(b, dir);
    assert.deepEqual(report.tables.map((t) => [t.table, t.rows, t.legacyName]), [['User', 2, false], ['ChatMessage', TRICKY.length, false], ['Item', 3, false]]);
    for (const table of ['User', 'ChatMessage', 'Item']) assert.deepEqual(rowsOf(b, table), rowsOf(a, table), table);
    assert.ok(Object.is(rowsOf(b, 'ChatMessage')[0]!.timestamp, -0));
    assert.ok(Object.is((rowsOf(b, 'Item')[0]!.ratios as number[])[0], -0));

    // A second save of what was loaded is byte-identical.
    const first = await snapshotDir(dir);
    await saveDataFolder(b, dir);
    assert.deepEqual(await snapshotDir(dir), first);
  });

  test('a transform (password hashing) is not applied again when rows are loaded', async () => {
    class Account extends Model {
      static password = field.str({ transform: (raw: string) => `hashed(${raw})` });
    }
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    const a = newStore([Account]);
    a.runSync((db) => db.create('Account', { pk: 'a1', password: 'pw' }));
    await saveDataFolder(a, dir);
    const b = newStore([Account]);
    await loadDataFolder(b, dir);
    assert.equal(rowsOf(b, 'Account')[0]!.password, 'hashed(pw)');
  });

  test('save writes every table at one snapshot and creates the folder; a missing folder loads as empty tables', async () => {
    await using folder = await tempDir('lexicons-persist-');
    const root = folder.path;
    const dir = join(root, 'nested', 'data');
    const empty = newStore();
    const report = await loadDataFolder(empty, dir);
    assert.deepEqual(report.tables.map((t) => [t.table, t.file, t.rows]), [['User', null, 0], ['ChatMessage', null, 0], ['Item', null, 0]]);
    const s = newStore();
    s.bulkLoad('User', [{ pk: 'u1', email: 'e', password: 'p' }]);
    const saved = await saveDataFolder(s, dir);
    assert.equal(saved.snapshot, s.snapshot());
    assert.equal(await readFile(join(dir, 'ChatMessage.csv'), 'utf8'), 'pk,author,channel,content,timestamp\n');
  });

  test('a header-only file is an empty table; an empty file stops the start', async () => {
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    await writeFile(join(dir, 'User.csv'), 'pk,email,password\n');
    const s = newStore();
    assert.equal((await loadDataFolder(s, dir)).tables[0]!.rows, 0);
    await writeFile(join(dir, 'User.csv'), '');
    await assert.rejects(loadDataFolder(newStore(), dir), (e) => isLexiconsError(e, 'CSV') && /User\.csv, line 1: empty file \(no header row\)/.test(e.message));
  });
});

describe('files of the original Python lexicons', () => {
  test('pandas to_csv files load: alphabetical columns, True/False, empty cells, Python reprs, integral floats, legacy snake_case name', async () => {
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    await cp(join(FIXTURES, 'legacy'), dir, { recursive: true });
    const before = await snapshotDir(dir);
    const s = newStore();
    const report = await loadDataFolder(s, dir);
    const byTable = new Map(report.tables.map((t) => [t.table, t]));
    assert.equal(byTable.get('ChatMessage')!.file, join(dir, 'chat_message.csv'));
    assert.equal(byTable.get('ChatMessage')!.legacyName, true);
    assert.equal(byTable.get('User')!.legacyName, false);

    assert.deepEqual(rowsOf(s, 'User'), [
      { pk: '1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b', email: 'bob, "the builder"@example.com', password: '' },
      { pk: 'b3f1c2a4-5d6e-4f70-8a9b-0c1d2e3f4a5b', email: 'ada@example.com', password: '4d8194b2daa10eb8e3a4ff252f37e33760f001a57938271b641a27eae67b0f07' },
    ]);
    const msgs = rowsOf(s, 'ChatMessage');
    assert.deepEqual(msgs.map((m) => m.timestamp), [1637000000.123456, 1637000001.5, 1637000002]);
    assert.equal(msgs[0]!.content, 'hello, world');
    assert.equal(msgs[1]!.content, 'line one\nline "two"\nünïcödé ✓ 🎉');
    assert.equal(msgs[2]!.author, null);
    assert.equal(msgs[2]!.content, "=cmd|' /C calc'!A0");

    const items = rowsOf(s, 'Item');
    assert.deepEqual(items[0], {
      pk: 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d', title: 'first', count: 3, score: 0.1, flag: true, tags: ['a', 'b'], nums: [1, 2, 3], labels: ['x'],
      ratios: [0.5, 1e-5, 1e16], flags: [true, false], note: null, owner: 'b3f1c2a4-5d6e-4f70-8a9b-0c1d2e3f4a5b',
    });
    assert.deepEqual(items[1], {
      pk: 'b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e', title: "it's", count: 0, score: -2.5, flag: false, tags: [], nums: [], labels: [],
      ratios: [], flags: [], note: 'has\ttab', owner: null,
    });
    assert.deepEqual(items[2]!.tags, ["it's", 'say "hi"', 'back\\slash', 'comma, here', 'new\nline', 'ünï ✓']);
    assert.equal(items[2]!.flag, false, 'an empty bool cell gets the default');
    assert.equal(items[2]!.labels, null, 'an empty set cell is null');
    assert.equal(items[2]!.score, 1637000000.123456);

    // Saving writes the new names and leaves the legacy file alone; the saved folder reloads identically.
    await saveDataFolder(s, dir);
    assert.ok((await readFile(join(dir, 'chat_message.csv'))).equals(before.get('chat_message.csv')!));
    const again = newStore();
    const r2 = await loadDataFolder(again, dir);
    assert.equal(r2.tables.find((t) => t.table === 'ChatMessage')!.file, join(dir, 'ChatMessage.csv'));
    for (const table of ['User', 'ChatMessage', 'Item']) assert.deepEqual(rowsOf(again, table), rowsOf(s, table), table);
  });

  test('a file with a byte-order mark and CRLF line ends (Excel, pandas utf-8-sig) loads; the BOM is not written back', async () => {
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    await cp(join(FIXTURES, 'bom'), dir, { recursive: true });
    assert.equal((await readFile(join(dir, 'User.csv')))[0], 0xef);
    const s = newStore();
    await loadDataFolder(s, dir);
    assert.deepEqual(rowsOf(s, 'User').map((u) => u.email), ['bob, "the builder"@example.com', 'ada@example.com']);
    await saveDataFolder(s, dir);
    assert.equal((await readFile(join(dir, 'User.csv'), 'utf8')).slice(0, 3), 'pk,');
  });

  test('legacy names: ChatMessage -> chat_message.csv; acronyms try both spellings', () => {
    assert.deepEqual(legacyNames('ChatMessage'), ['chat_message.csv']);
    assert.deepEqual(legacyNames('HTTPRequest'), ['http_request.csv', 'h_t_t_p_request.csv']);
    assert.deepEqual(legacyNames('user'), []);
  });
});

describe('schema drift', () => {
  class UserV2 extends Model {
    static override table = 'User';
    static email = field.str();
    static password = field.str();
    static role = field.str({ default: 'member' });
    static logins = field.int();
    static tags = field.set('str');
  }
  class UserV0 extends Model {
    static override table = 'User';
    static email = field.str();
  }

  test('a field added to the Model since the file was written gets its default', async () => {
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    await writeFile(join(dir, 'User.csv'), 'pk,email,password\nu1,a@b.c,x\n');
    const s = newStore([UserV2]);
    const report = await loadDataFolder(s, dir);
    assert.deepEqual(report.tables[0]!.addedFields, ['role', 'logins', 'tags']);
    assert.deepEqual(rowsOf(s, 'User'), [{ pk: 'u1', email: 'a@b.c', password: 'x', role: 'member', logins: 0, tags: null }]);
  });

  test('a column the Model no longer has stops the start by default, naming column and file; the file is untouched', async () => {
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    await writeFile(join(dir, 'User.csv'), 'pk,email,password\nu1,a@b.c,x\n');
    const before = await snapshotDir(dir);
    const s = newStore([UserV0]);
    await assert.rejects(loadDataFolder(s, dir), (e) =>
      isLexiconsError(e, 'CSV') && e.message.startsWith(`${join(dir, 'User.csv')}: column password not in Model User; refusing to start`) && e.message.includes('run `lexicons migrate --dry-run`'));
    assert.deepEqual(await snapshotDir(dir), before);
    await assert.rejects(saveDataFolder(s, dir), (e) => isLexiconsError(e, 'CSV') && /refusing to save/.test(e.message));
    assert.deepEqual(await snapshotDir(dir), before);
  });

  test("unknownColumns: 'keep' preserves those columns in <Table>.extra.csv (atomically, never over different content)", async () => {
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    const original = 'pk,email,password,legacy\nu1,a@b.c,"x, y",\nu2,c@d.e,"",old\n';
    await writeFile(join(dir, 'User.csv'), original);
    const s = newStore([UserV0]);
    const report = await loadDataFolder(s, dir, { unknownColumns: 'keep' });
    assert.deepEqual(report.tables[0]!.extraColumns, ['password', 'legacy']);
    assert.equal(report.tables[0]!.extraFile, join(dir, 'User.extra.csv'));
    assert.equal(await readFile(join(dir, 'User.extra.csv'), 'utf8'), 'pk,password,legacy\nu1,"x, y",\nu2,"",old\n');
    assert.deepEqual(rowsOf(s, 'User'), [{ pk: 'u1', email: 'a@b.c' }, { pk: 'u2', email: 'c@d.e' }]);
    assert.equal(await readFile(join(dir, 'User.csv'), 'utf8'), original, 'loading never writes the data file');

    // The same load again finds the same content already preserved: nothing new is written.
    await loadDataFolder(newStore([UserV0]), dir, { unknownColumns: 'keep' });
    assert.deepEqual((await readdir(dir)).sort(), ['User.csv', 'User.extra.csv']);
    // Different extra content never replaces the existing side file.
    await writeFile(join(dir, 'User.csv'), 'pk,email,password\nu1,a@b.c,new\n');
    const r3 = await loadDataFolder(newStore([UserV0]), dir, { unknownColumns: 'keep' });
    assert.equal(r3.tables[0]!.extraFile, join(dir, 'User.extra.1.csv'));
    assert.equal(await readFile(join(dir, 'User.extra.1.csv'), 'utf8'), 'pk,password\nu1,new\n');
    assert.equal(await readFile(join(dir, 'User.extra.csv'), 'utf8'), 'pk,password,legacy\nu1,"x, y",\nu2,"",old\n');

    // The next save writes the table without the extra columns; it then loads with the default policy.
    await saveDataFolder(s, dir);
    assert.equal(await readFile(join(dir, 'User.csv'), 'utf8'), 'pk,email\nu1,a@b.c\nu2,c@d.e\n');
    await loadDataFolder(newStore([UserV0]), dir);
  });
});

describe('malformed files stop the start and lose nothing', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['truncated-quote.csv', 'User.csv', /User\.csv, line 3, column email: unclosed quote/],
    ['wrong-cell-count.csv', 'User.csv', /User\.csv, line 3: wrong number of cells/],
    ['duplicate-column.csv', 'User.csv', /User\.csv, line 1 \(header\), column email: duplicate column name/],
    ['no-pk-column.csv', 'User.csv', /User\.csv, line 1 \(header\): no pk column/],
    ['wrong-cell-type.csv', 'ChatMessage.csv', /ChatMessage\.csv, line 3, column timestamp: expected a float, got "yesterday"/],
  ];
  for (const [fixture, target, re] of cases) {
    test(`${fixture}: CSV error naming file, line and column; files byte-identical; the next save refuses`, async () => {
      await using folder = await tempDir('lexicons-persist-');
      const dir = folder.path;
      await cp(join(FIXTURES, 'legacy'), dir, { recursive: true });
      await cp(join(FIXTURES, 'malformed', fixture), join(dir, target));
      const before = await snapshotDir(dir);
      const s = newStore();
      await assert.rejects(loadDataFolder(s, dir), (e) => isLexiconsError(e, 'CSV') && re.test(e.message) && e.message.includes(join(dir, target)));
      assert.deepEqual(await snapshotDir(dir), before);
      await assert.rejects(saveDataFolder(s, dir), (e) =>
        isLexiconsError(e, 'CSV') && e.message.startsWith(`refusing to save to ${dir}`) && e.message.includes(target.replace('.csv', ':')));
      assert.deepEqual(await snapshotDir(dir), before, 'the refused save wrote nothing');
    });
  }

  test('tables after the failed one are protected too; a successful load clears the refusal', async () => {
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    await cp(join(FIXTURES, 'legacy'), dir, { recursive: true });
    await cp(join(FIXTURES, 'malformed', 'wrong-cell-count.csv'), join(dir, 'User.csv'));
    const t = newStore();
    await assert.rejects(loadDataFolder(t, dir));
    await assert.rejects(saveDataFolder(t, dir), (e) => isLexiconsError(e, 'CSV') && /User: .*ChatMessage: not loaded.*Item: not loaded/.test(e.message));
    // Saving elsewhere is allowed; fixing the file and loading again lifts the refusal.
    {
      await using other = await tempDir('lexicons-persist-');
      await saveDataFolder(t, other.path);
    }
    await cp(join(FIXTURES, 'legacy', 'User.csv'), join(dir, 'User.csv'));
    const u = newStore();
    await loadDataFolder(u, dir);
    await saveDataFolder(u, dir);
  });

  test('a duplicate pk names the line of the second occurrence; an unreadable file names the file', async () => {
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    await writeFile(join(dir, 'User.csv'), 'pk,email,password\nu1,a,x\nu2,b,y\nu1,c,z\n');
    await assert.rejects(loadDataFolder(newStore(), dir), (e) => isLexiconsError(e, 'CSV') && /User\.csv, line 4, column pk: .*pk u1 already exists/.test(e.message));
    await writeFile(join(dir, 'User.csv'), 'pk,email,password\nu1,a,x\nu2,a,y\n');
    await assert.rejects(loadDataFolder(newStore(), dir), (e) => isLexiconsError(e, 'CSV') && /User\.csv, line 3, column email: .*"a" already exists/.test(e.message));
    await rm(join(dir, 'User.csv'));
    await mkdir(join(dir, 'User.csv'));
    await assert.rejects(loadDataFolder(newStore(), dir), (e) => isLexiconsError(e, 'CSV') && /User\.csv: cannot read: EISDIR/.test(e.message));
  });
});

describe('options', () => {
  test('options are validated with exact messages', async () => {
    const s = newStore();
    const bad: Array<[() => Promise<unknown>, string]> = [
      [() => loadDataFolder(s, '', {}), 'dir must be a non-empty string'],
      [() => loadDataFolder(s, 'x', { unknownColumns: 'drop' } as unknown as LoadOptions), "options.unknownColumns must be 'error' or 'keep'"],
      [() => loadDataFolder(s, 'x', { batchSize: 0 }), 'options.batchSize must be a positive integer'],
      [() => loadDataFolder(s, 'x', { batchSize: 1.5 }), 'options.batchSize must be a positive integer'],
      [() => saveDataFolder(s, 'x', { progressEvery: -1 }), 'options.progressEvery must be a positive integer'],
      [() => saveDataFolder(s, 'x', { chunkRows: 0 }), 'options.chunkRows must be a positive integer'],
      [() => saveDataFolder(s, 'x', { onProgress: 'no' as unknown as () => void }), 'options.onProgress must be a function'],
    ];
    for (const [call, message] of bad) await assert.rejects(call(), (e) => isLexiconsError(e, 'OPTION') && e.message === message, message);
  });
});

describe('crash safety and streaming', () => {
  test('a save killed with SIGKILL mid-table leaves the old file intact; the next load uses it and removes the temp file', async () => {
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    const old = newStore();
    old.bulkLoad('User', [{ pk: 'u1', email: 'a@b.c', password: 'x' }]);
    old.bulkLoad('ChatMessage', Array.from({ length: 20_000 }, (_, i) => ({ pk: `old-${i}`, author: 'u1', channel: 'Public', content: `old ${i}`, timestamp: i })));
    await saveDataFolder(old, dir);
    const before = await readFile(join(dir, 'ChatMessage.csv'));

    const child = fork(CRASH_WRITER, ['save', dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const exited = once(child, 'exit');
    const [msg] = (await Promise.race([once(child, 'message'), exited.then(() => ['exited early'])])) as [string];
    assert.equal(msg, 'midway');
    const temps = (await readdir(dir)).filter((n) => n.startsWith('.ChatMessage.csv.') && n.endsWith('.tmp'));
    assert.equal(temps.length, 1);
    assert.ok((await stat(join(dir, temps[0]!))).size > 1 << 20, 'the new file was partly written');
    child.kill('SIGKILL');
    assert.deepEqual(await exited, [null, 'SIGKILL']);

    assert.ok((await readFile(join(dir, 'ChatMessage.csv'))).equals(before), 'old file byte-identical');
    const s = newStore();
    const report = await loadDataFolder(s, dir);
    assert.deepEqual(report.removedTempFiles, temps);
    assert.equal(report.tables.find((t) => t.table === 'ChatMessage')!.rows, 20_000);
    assert.ok(!(await readdir(dir)).some((n) => n.endsWith('.tmp')));
  });

  test('1,000,000 rows save as a stream (the file grows while rows are scanned) and load in bulkLoad batches', async () => {
    class Tick extends Model {
      static n = field.int();
      static label = field.str({ nullable: true });
    }
    const N = 1_000_000;
    await using folder = await tempDir('lexicons-persist-');
    const dir = folder.path;
    const a = SharedStore.create(compileSchema([Tick]), { initialRows: N });
    a.bulkLoad('Tick', (function* () {
      for (let i = 0; i < N; i++) yield { pk: `t${i}`, n: i, label: i % 10 ? `label ${i}` : null };
    })());
    const file = join(dir, 'Tick.csv');
    const sizes: number[] = [];
    const saved = await saveDataFolder(a, dir, {
      progressEvery: 250_000,
      onProgress: async ({ rows }) => {
        if (rows < N) {
          const temp = (await readdir(dir)).find((n) => n.endsWith('.tmp'))!;
          sizes.push((await stat(join(dir, temp))).size);
        }
      },
    });
    assert.equal(saved.tables[0]!.rows, N);
    assert.equal(sizes.length, 3);
    assert.ok(sizes[0]! > 0 && sizes[0]! < sizes[1]! && sizes[1]! < sizes[2]! && sizes[2]! < saved.tables[0]!.bytes, `temp file sizes ${sizes}`);
    assert.equal((await stat(file)).size, saved.tables[0]!.bytes);

    const b = SharedStore.create(compileSchema([Tick]), { initialRows: N });
    const commitBefore = b.snapshot();
    const report = await loadDataFolder(b, dir, { batchSize: 100_000 });
    assert.equal(report.tables[0]!.rows, N);
    assert.equal(b.snapshot() - commitBefore, 10, 'one bulkLoad commit per batch of 100,000 rows');
    let count = 0;
    let nulls = 0;
    for (const r of b.scan('Tick')) {
      count++;
      if (r.label === null) nulls++;
    }
    assert.equal(count, N);
    assert.equal(nulls, N / 10);
  });
});
