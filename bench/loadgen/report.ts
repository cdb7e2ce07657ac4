/**
 * @module bench/loadgen/report
 * Results files and the README table: one `bench/results/<workload>.json` per workload (machine,
 * date, commit, mode, figures per system, headline ratios, targets met or missed by how much),
 * and the figures table of bench/README.md, rewritten between its markers from every results file
 * (other engineers' storage.json and csv.json included, rendered generically).
 */
import { execFileSync } from 'node:child_process';
import { readFile, readdir, writeFile, rename } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import type { Figures, WorkloadName, WorkloadOutcome } from './workloads.js';
import type { LoadResult } from './driver.js';

export interface Target {
  name: string;
  /** What is compared, e.g. `lexicons-w2 calls_per_s / uws-raw calls_per_s`. */
  measure: string;
  goal: string;
  value: number | null;
  /** null: not measured (the system did not run). */
  met: boolean | null;
  note: string;
}

export interface ResultsFile {
  workload: WorkloadName;
  machine: { cpu: string; cores: number; memoryGiB: number; node: string; os: string };
  date: string;
  commit: string;
  mode: string;
  config: Record<string, unknown>;
  /** The figure the ratios compare, per workload. */
  headline: string;
  /** Table names of the systems. */
  labels: Record<string, string>;
  figures: Record<string, Figures>;
  ratios: Record<string, number | null>;
  targets: Target[];
  notes: string[];
  details: Record<string, Record<string, LoadResult>>;
}

export const START = '<!-- results:start -->';
export const END = '<!-- results:end -->';

export function machineInfo(): ResultsFile['machine'] {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
  };
}

export function gitCommit(cwd: string): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown'; // not a git checkout (e.g. an unpacked tarball)
  }
}

const HEADLINE: Record<WorkloadName, string> = {
  echo: 'calls_per_s',
  chat: 'delivered_per_s',
  read: 'list_calls_per_s',
  connect: 'conns_per_s',
  transfer: 'hot_to_echo',
};

function num(f: Figures | undefined, key: string): number | null {
  const v = f?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function ratio(a: number | null, b: number | null): number | null {
  return a === null || b === null || b === 0 ? null : Math.round((a / b) * 1000) / 1000;
}

/** lexicons/raw-uWS, lexicons/Socket.IO, workers2/workers1, on the workload's headline figure. */
export function ratios(workload: WorkloadName, figures: Record<string, Figures>): Record<string, number | null> {
  const keys = workload === 'read' ? ['list_calls_per_s', 'lookup_calls_per_s'] : workload === 'transfer' ? ['hot_to_echo', 'uniform_to_echo'] : [HEADLINE[workload]];
  const out: Record<string, number | null> = {};
  for (const key of keys) {
    const suffix = keys.length > 1 ? ` (${key})` : '';
    const v = (s: string) => num(figures[s], key);
    out[`lexicons-w2 / uws-raw${suffix}`] = ratio(v('lexicons-w2'), v('uws-raw'));
    out[`lexicons-w2 / socketio${suffix}`] = ratio(v('lexicons-w2'), v('socketio'));
    out[`lexicons-w2 / lexicons-w1${suffix}`] = ratio(v('lexicons-w2'), v('lexicons-w1'));
    out[`lexicons-w1 / uws-raw${suffix}`] = ratio(v('lexicons-w1'), v('uws-raw'));
    out[`lexicons-w1 / socketio${suffix}`] = ratio(v('lexicons-w1'), v('socketio'));
    out[`socketio / uws-raw${suffix}`] = ratio(v('socketio'), v('uws-raw'));
    // Before/after, same run (present only when the baseline systems ran).
    if (figures['baseline-w1'] !== undefined) out[`lexicons-w1 / baseline-w1${suffix}`] = ratio(v('lexicons-w1'), v('baseline-w1'));
    if (figures['baseline-w2'] !== undefined) out[`lexicons-w2 / baseline-w2${suffix}`] = ratio(v('lexicons-w2'), v('baseline-w2'));
    // History + presence on / off, same run (present only when the nohist systems ran).
    for (const w of ['w1', 'w2']) {
      if (figures[`lexicons-${w}-nohist`] !== undefined) out[`lexicons-${w} / lexicons-${w}-nohist${suffix}`] = ratio(v(`lexicons-${w}`), v(`lexicons-${w}-nohist`));
    }
  }
  return out;
}

function why(figures: Record<string, Figures>, system: string): string {
  const f = figures[system];
  if (f === undefined) return `${system} not run`;
  return `${system} ${String(f.skipped ?? f.failed ?? 'has no figure')}`;
}

/** The brief's targets (reported, not asserted), with by how much each is missed. */
export function targets(workload: WorkloadName, figures: Record<string, Figures>): Target[] {
  const out: Target[] = [];
  const atLeast = (name: string, measure: string, goal: number, value: number | null, missingNote: string, fmt: (x: number) => string) => {
    if (value === null) {
      out.push({ name, measure, goal: `>= ${fmt(goal)}`, value: null, met: null, note: `not measured: ${missingNote}` });
      return;
    }
    const met = value >= goal;
    out.push({ name, measure, goal: `>= ${fmt(goal)}`, value, met, note: met ? `met (${fmt(value)})` : `missed: ${fmt(value)}, ${Math.round((1 - value / goal) * 100)}% short of the goal` });
  };
  if (workload === 'echo') {
    const value = ratio(num(figures['lexicons-w2'], 'calls_per_s'), num(figures['uws-raw'], 'calls_per_s'));
    atLeast('echo throughput vs raw uWS', 'lexicons-w2 calls_per_s / uws-raw calls_per_s', 0.25, value,
      value === null ? `${why(figures, 'lexicons-w2')}; ${why(figures, 'uws-raw')}` : '', (x) => `${Math.round(x * 1000) / 10}%`);
  }
  if (workload === 'chat') {
    const value = ratio(num(figures['lexicons-w2'], 'delivered_per_s'), num(figures.socketio, 'delivered_per_s'));
    atLeast('chat fan-out vs Socket.IO', 'lexicons-w2 delivered_per_s / socketio delivered_per_s', 5, value,
      value === null ? `${why(figures, 'lexicons-w2')}; ${why(figures, 'socketio')}` : '', (x) => `${Math.round(x * 100) / 100}x`);
    const p99 = num(figures['lexicons-w2'], 'half_rate_delivery_p99_ms');
    if (p99 === null) {
      out.push({ name: 'chat p99 at 50% of max', measure: 'lexicons-w2 half_rate_delivery_p99_ms', goal: '<= 10 ms', value: null, met: null, note: `not measured: ${why(figures, 'lexicons-w2')}` });
    } else {
      const met = p99 <= 10;
      out.push({
        name: 'chat p99 at 50% of max',
        measure: 'lexicons-w2 half_rate_delivery_p99_ms',
        goal: '<= 10 ms',
        value: p99,
        met,
        note: met ? `met (${p99} ms)` : `missed: ${p99} ms, ${Math.round((p99 / 10 - 1) * 100)}% over the goal`,
      });
    }
  }
  if (workload === 'transfer') {
    const pct = (x: number) => `${x}x echo`;
    for (const [key, goal, label] of [['hot_to_echo', 0.6, 'contended'], ['uniform_to_echo', 0.8, 'uniform']] as const) {
      const value = num(figures['lexicons-w2'], key);
      atLeast(`${label} transfers vs echo (same server)`, `lexicons-w2 ${key}`, goal, value, value === null ? why(figures, 'lexicons-w2') : '', pct);
    }
  }
  return out;
}

export function buildResults(
  workload: WorkloadName,
  outcome: WorkloadOutcome,
  meta: { mode: string; commit: string; config: Record<string, unknown>; notes: string[]; labels: Record<string, string> },
): ResultsFile {
  const figures = outcome.figures as Record<string, Figures>;
  return {
    workload,
    machine: machineInfo(),
    date: new Date().toISOString(),
    commit: meta.commit,
    mode: meta.mode,
    config: meta.config,
    headline: HEADLINE[workload],
    labels: meta.labels,
    figures,
    ratios: ratios(workload, figures),
    targets: targets(workload, figures),
    notes: meta.notes,
    details: outcome.details as Record<string, Record<string, LoadResult>>,
  };
}

/** Write `<dir>/<name>.json` atomically (temp file, then rename). */
export async function writeJson(dir: string, name: string, value: unknown): Promise<string> {
  const path = join(dir, `${name}.json`);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
  await rename(tmp, path);
  return path;
}

// ---- README rendering -------------------------------------------------------------------------

const ORDER = ['echo', 'chat', 'read', 'connect'];

function cell(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) || Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : String(Math.round(v * 1000) / 1000);
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v).replaceAll('|', '\\|');
  return String(v).replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** Rows = systems (or entries), columns = union of their keys. */
function table(rows: [string, Record<string, unknown>][]): string[] {
  const cols: string[] = [];
  for (const [, r] of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const out = [`| system | ${cols.join(' | ')} |`, `| --- | ${cols.map(() => '---:').join(' | ')} |`];
  for (const [name, r] of rows) out.push(`| ${name} | ${cols.map((c) => cell(r[c])).join(' | ')} |`);
  return out;
}

/** Flatten nested objects to dotted keys (for results files of unknown shape). */
function flatten(value: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix === '' ? k : `${prefix}.${k}`, out);
  } else out[prefix] = value;
  return out;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Markdown for one results file, whoever wrote it. */
export function renderResults(name: string, json: unknown): string[] {
  if (!isRecord(json)) return [`### ${name}`, '', '(unreadable results file)', ''];
  const lines = [`### ${String(json.workload ?? name)}`, ''];
  const meta = [json.mode && `mode ${String(json.mode)}`, json.date && String(json.date).slice(0, 10), json.commit && `commit ${String(json.commit).slice(0, 10)}`];
  const m = json.machine;
  if (isRecord(m)) meta.push(`${String(m.cpu ?? '')} x${String(m.cores ?? '')}, Node ${String(m.node ?? '')}`);
  lines.push(`_${meta.filter(Boolean).join(' · ')}_`, '');
  const figures = json.figures;
  if (isRecord(figures) && Object.values(figures).every(isRecord)) {
    const labels = (json.labels ?? {}) as Record<string, string>;
    lines.push(...table(Object.entries(figures).map(([k, v]) => [labels[k] ?? k, flatten(v)])), '');
  } else if (figures !== undefined) {
    lines.push(...table([['figures', flatten(figures)]]), '');
  } else {
    const rest = Object.fromEntries(Object.entries(json).filter(([k]) => !['machine', 'date', 'commit', 'mode', 'workload', 'details'].includes(k)));
    lines.push(...table([[name, flatten(rest)]]), '');
  }
  if (isRecord(json.ratios)) {
    const known = Object.entries(json.ratios).filter(([, v]) => v !== null);
    if (known.length > 0) lines.push(`Ratios (${String(json.headline ?? 'headline figure')}): ${known.map(([k, v]) => `${k} = **${cell(v)}**`).join(', ')}`, '');
  }
  if (Array.isArray(json.targets) && json.targets.length > 0) {
    lines.push('Targets:', '');
    for (const t of json.targets as Record<string, unknown>[]) {
      const mark = t.met === true ? 'met' : t.met === false ? 'MISSED' : 'not measured';
      lines.push(`- ${String(t.name)} (${String(t.goal)}): **${mark}**. ${String(t.note ?? '')}`);
    }
    lines.push('');
  }
  if (Array.isArray(json.notes) && json.notes.length > 0) {
    for (const n of json.notes) lines.push(`> ${String(n)}`);
    lines.push('');
  }
  return lines;
}

/** Rewrite the README's results section from every `*.json` in `resultsDir`. */
export async function updateReadme(readmePath: string, resultsDir: string): Promise<void> {
  const files = (await readdir(resultsDir)).filter((f) => f.endsWith('.json')).sort((a, b) => {
    const ia = ORDER.indexOf(a.replace(/\.json$/, ''));
    const ib = ORDER.indexOf(b.replace(/\.json$/, ''));
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  const body: string[] = [];
  for (const f of files) {
    let json: unknown;
    try {
      json = JSON.parse(await readFile(join(resultsDir, f), 'utf8'));
    } catch (error) {
      body.push(`### ${f}`, '', `(cannot read: ${(error as Error).message})`, '');
      continue;
    }
    body.push(...renderResults(f.replace(/\.json$/, ''), json));
  }
  const readme = await readFile(readmePath, 'utf8');
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`${readmePath} has no ${START} ... ${END} markers`);
  const next = `${readme.slice(0, start + START.length)}\n\n${body.join('\n')}\n${readme.slice(end)}`;
  const tmp = `${readmePath}.${process.pid}.tmp`;
  await writeFile(tmp, next);
  await rename(tmp, readmePath);
}
