/**
 * `Database.toArrow`: the public Apache Arrow view of a table's committed rows — row count and
 * values equal the committed rows (zero-copy and gathered), and writes committed after the view
 * was taken (inserts, updates, deletes) do not change it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as arrow from 'apache-arrow';
import { Database, Model, field } from '../src/index.js';
import { tempDir } from './helpers/temp-dir.js';

class Item extends Model {
  static title = field.str({ unique: true });
  static qty = field.int({ nullable: true });
  static price = field.float();
  static tags = field.list('str');
}

type Plain = { pk: string; title: string; qty: number | null; price: number; tags: string[] };

function rowsOf(view: arrow.Table): Plain[] {
  return view.toArray().map((r: { toJSON(): Record<string, unknown> }) => {
    const o = r.toJSON();
    const tags = o.tags as { toArray(): string[] } | null;
    return { pk: o.pk as string, title: o.title as string, qty: o.qty === null ? null : Number(o.qty), price: o.price as number, tags: tags === null ? [] : [...tags.toArray()] };
  });
}

const committed = (database: Awaited<ReturnType<typeof Database.open>>): Plain[] =>
  database.read((db) => db.query(Item, { _sort: 'pk' }).map((r) => ({ pk: r.pk, title: r.title, qty: r.qty, price: r.price, tags: [...r.tags] })));

describe('Database.toArrow', () => {
  it('has the committed rows, and a view already taken does not change under later writes', async () => {
    await using folder = await tempDir('lexicons-arrow-');
    const database = await Database.open({ models: [Item], data: folder.path });
    try {
      await database.run((db) => {
        for (let i = 0; i < 50; i++) db.create(Item, { pk: `i${String(i).padStart(2, '0')}`, title: `n${i} ✓`, qty: i % 7 === 0 ? null : i, price: i / 4, tags: i % 2 ? ['a', `t${i}`] : [] });
      });
      const view = database.toArrow(Item); // append-only so far: zero-copy
      assert.equal(view.numRows, 50);
      assert.deepEqual(view.schema.fields.map((f) => f.name), ['pk', 'title', 'qty', 'price', 'tags']);
      assert.deepEqual(rowsOf(view).sort((a, b) => a.pk.localeCompare(b.pk)), committed(database));
      const before = rowsOf(view);

      await database.run((db) => {
        db.create(Item, { pk: 'new', title: 'new', qty: 1, price: 1, tags: ['x'] });
        db.update(Item, 'i03', { title: 'renamed', qty: 999, tags: ['changed'] });
        db.drop(Item, 'i04');
      });
      assert.deepEqual(rowsOf(view), before, 'a view taken before the writes keeps its rows');

      const after = database.toArrow(Item); // rows superseded and deleted: a gathered copy
      assert.equal(after.numRows, 50);
      assert.deepEqual(rowsOf(after).sort((a, b) => a.pk.localeCompare(b.pk)), committed(database));
      // Export: Arrow IPC round trip.
      assert.equal(arrow.tableFromIPC(arrow.tableToIPC(after)).numRows, 50);
    } finally {
      await database.close();
    }
  });
});
