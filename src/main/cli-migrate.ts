/**
 * @module main/cli-migrate
 * `lexicons migrate [app] --data DIR [--dry-run]`: prints the plan of storage/migrate.ts (what
 * changes per Model), then applies it (a backup first, then an atomic snapshot), or with
 * `--dry-run` stops there. Exit status: 0 applied or up to date (or a dry run that would apply),
 * 1 refused (values that would not convert, named by row, column and value).
 */
import { isLexiconsError } from '../errors.js';
import { applyMigration, planMigration, refusalMessage, type MigrationPlan } from '../storage/migrate.js';
import { readStoredData } from '../storage/migrate-read.js';
import type { Schema } from '../storage/schema.js';
import { refuseLiveFolder } from './cli-shell.js';

/** The plan as people read it (one line per change). */
export function formatPlan(plan: MigrationPlan): string {
  if (plan.upToDate) return `${plan.dir}: the stored data matches the Models; nothing to migrate\n`;
  const lines = [`Migration plan for ${plan.dir}:`];
  for (const t of plan.tables) {
    const changes = [
      ...t.added.map((a) => `    + ${a.field}: added, every row gets ${JSON.stringify(a.default)}`),
      ...t.renamed.map((r) => `    ~ ${r.from} -> ${r.to}: renamed, values kept`),
      ...t.retyped.map((r) => `    * ${r.field}: now ${r.kind}, ${r.converted} value${r.converted === 1 ? '' : 's'} converted`),
      ...t.removed.map((r) => `    - ${r.column}: removed, dropping the values of ${r.values} row${r.values === 1 ? '' : 's'}`),
    ];
    if (changes.length > 0) lines.push(`  ${t.table} (${t.rows} row${t.rows === 1 ? '' : 's'}):`, ...changes);
  }
  for (const r of plan.removedTables) lines.push(`  - ${r.table} (${r.rows} row${r.rows === 1 ? '' : 's'}): no Model declares it any more; dropped`);
  return `${lines.join('\n')}\n`;
}

/** Runs the command; returns the exit status. */
export async function migrate(dir: string, schema: Schema, dryRun: boolean): Promise<number> {
  await refuseLiveFolder(dir, 'migrate');
  if (dryRun) {
    const { plan } = planMigration(await readStoredData(dir, schema.tables.map((t) => t.name)), schema);
    process.stdout.write(formatPlan(plan));
    if (plan.problems.length > 0) {
      process.stderr.write(`lexicons migrate would refuse: ${refusalMessage(plan.problems).replace('nothing was changed', 'nothing would be changed')}\n`);
      return 1;
    }
    if (!plan.upToDate) process.stdout.write('Dry run: nothing was changed (run without --dry-run to apply; a backup of the folder is taken first)\n');
    return 0;
  }
  try {
    const { plan, backup, snapshot } = await applyMigration(dir, schema);
    process.stdout.write(formatPlan(plan));
    if (backup !== null && snapshot !== null) {
      process.stdout.write(`Applied: the folder holds the migrated data (snapshot of commit ${snapshot.commitId}); the files before it are in ${backup}\n`);
    }
    return 0;
  } catch (err) {
    if (!isLexiconsError(err, 'SCHEMA')) throw err;
    process.stderr.write(`lexicons migrate refused: ${err.message}\n`);
    return 1;
  }
}
