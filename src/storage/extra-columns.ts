/**
 * @module storage/extra-columns
 * Columns of a CSV file that the Model no longer has, kept aside when a load runs with
 * `unknownColumns: 'keep'`: `<Table>.extra.csv` holds the pk and those columns, as text, so that
 * no data is dropped by a field removed from a Model.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { formatRecords, readCsvFile } from './csv.js';
import type { Cell, HeaderPlan } from './csv-codec.js';
import { exists } from './file-system.js';

/**
 * Writes `<Table>.extra.csv` (pk + the extra columns, cells kept as text). The side file's
 * content is gathered in memory (only those columns) before the atomic write. An existing side
 * file with different content is never replaced: the new one gets the first free
 * `.extra.<n>.csv`; identical content already there is not written again.
 */
export async function writeExtraFile(root: string, table: string, plan: HeaderPlan): Promise<string> {
  const chunks: string[] = [formatRecords([['pk', ...plan.extra.map((c) => c.name)]])];
  let rows: Cell[][] = [];
  let header = true;
  await readCsvFile(
    plan.file,
    (cells) => {
      if (header) {
        header = false;
        return;
      }
      rows.push([cells[plan.pkIndex] ?? null, ...plan.extra.map((c) => cells[c.index] ?? null)]);
      if (rows.length >= 1000) {
        chunks.push(formatRecords(rows));
        rows = [];
      }
    },
    (i) => plan.header[i],
  );
  if (rows.length) chunks.push(formatRecords(rows));
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(c);
  const digest = hash.digest('hex');
  for (let n = 0; ; n++) {
    const path = join(root, n === 0 ? `${table}.extra.csv` : `${table}.extra.${n}.csv`);
    if (!(await exists(path))) {
      await writeFileAtomic(path, chunks);
      return path;
    }
    if ((await hashFile(path)) === digest) return path; // already preserved
  }
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
