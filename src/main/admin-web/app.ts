/**
 * The admin page's script (bundled by esbuild into dist/src/main/admin-web/app.js): polls the
 * admin API (same origin, same credentials as the page), draws the live charts on canvases, and
 * lists tables, a sortable page of rows, connections and channels. Values are written as text
 * (textContent), never as HTML. Each chart canvas carries its latest figures in data attributes
 * (`data-points`, `data-latest`, `data-max`) for tests and scripts.
 */

interface Sample {
  seq: number;
  time: number;
  callsPerSecond: number;
  deliveredPerSecond: number;
  commitMs: number | null;
  rssMiB: number;
  heapMiB: number;
  storeMiB: number;
}
interface FieldInfo {
  name: string;
  kind: string;
  secret: boolean;
  sortable: boolean;
}
interface TableInfo {
  name: string;
  rows: number;
  versions: number;
  bytes: number;
  fields: FieldInfo[];
}
interface Overview {
  status: { phase: string; connections: number; workers: number; uptimeSeconds: number; walFailed: string | null };
  tables: TableInfo[];
  connections: { total: number; listed: Array<{ address: string; auth: string | null; channels: string[]; bufferedBytes: number; queuedUnits: number; connectedAt: number }> };
  channels: { total: number; history: boolean; listed: Array<{ name: string; subscribers: number; position: { epoch: string; offset: number; oldest: number } | null }> };
}
interface RowsPage {
  table: string;
  total: number;
  offset: number;
  limit: number;
  sort: string;
  desc: boolean;
  rows: Array<Record<string, unknown>>;
}

const MASK = '••••••';
const KEEP = 300; // samples kept: 5 minutes at one per second
const COLORS = { calls: '#2f6fdf', delivered: '#16a34a', commit: '#d97706', rss: '#7c3aed', heap: '#db2777', store: '#0891b2' };

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

function showError(message: string | null): void {
  const box = $('error');
  box.hidden = message === null;
  box.textContent = message ?? '';
}

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { cache: 'no-store' });
  if (res.status === 401) throw new Error('not authorized: open this page from an adminTrust address, the admin port, or with the admin token');
  const body = (await res.json()) as T & { error?: string };
  if (!res.ok) throw new Error(body.error ?? `${path}: HTTP ${res.status}`);
  return body;
}

function cell(row: HTMLTableRowElement, text: string, className = ''): HTMLTableCellElement {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fill<T>(tbody: HTMLTableSectionElement, items: readonly T[], render: (row: HTMLTableRowElement, item: T) => void): void {
  tbody.replaceChildren();
  for (const item of items) render(tbody.insertRow(), item);
}

// -- charts ------------------------------------------------------------------------------------

const samples: Sample[] = [];
let lastSeq = 0;

interface Series {
  values: Array<number | null>;
  color: string;
}

/** Draws line series on a canvas (y from 0 to the max seen), and records figures in data attributes. */
function drawChart(canvas: HTMLCanvasElement, series: Series[]): void {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  let max = 0;
  for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
  const top = max > 0 ? niceCeiling(max) : 1;
  const left = 44;
  const plotW = width - left - 6;
  const plotH = height - 18;
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#66707a';
  ctx.strokeStyle = '#e3e7eb';
  ctx.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    const y = 4 + plotH * (1 - f);
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(width - 6, y);
    ctx.stroke();
    ctx.fillText(formatNumber(top * f), 2, y + 4);
  }
  ctx.fillText(`last ${Math.round(KEEP / 60)} min`, left, height - 2);
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let drawing = false;
    s.values.forEach((v, i) => {
      if (v === null) {
        drawing = false;
        return;
      }
      const x = left + (plotW * (KEEP - s.values.length + i)) / (KEEP - 1);
      const y = 4 + plotH * (1 - v / top);
      if (drawing) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      // A point without a neighbour (a lone commit between idle seconds) gets a dot.
      if (!drawing && (s.values[i + 1] ?? null) === null) {
        ctx.fillStyle = s.color;
        ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
      }
      drawing = true;
    });
    ctx.stroke();
  }
  const first = series[0]!.values;
  canvas.dataset.points = String(first.length);
  canvas.dataset.latest = String(first.at(-1) ?? '');
  canvas.dataset.max = String(max);
}

function niceCeiling(n: number): number {
  const p = 10 ** Math.floor(Math.log10(n));
  for (const m of [1, 2, 5, 10]) if (n <= m * p) return m * p;
  return 10 * p;
}

function formatNumber(n: number): string {
  return n >= 1000 ? `${Math.round(n / 100) / 10}k` : String(Math.round(n * 100) / 100);
}

function drawCharts(): void {
  const pick = (f: (s: Sample) => number | null) => samples.map(f);
  drawChart($('chart-calls'), [{ values: pick((s) => s.callsPerSecond), color: COLORS.calls }]);
  drawChart($('chart-delivered'), [{ values: pick((s) => s.deliveredPerSecond), color: COLORS.delivered }]);
  drawChart($('chart-commit'), [{ values: pick((s) => s.commitMs), color: COLORS.commit }]);
  drawChart($('chart-memory'), [
    { values: pick((s) => s.rssMiB), color: COLORS.rss },
    { values: pick((s) => s.heapMiB), color: COLORS.heap },
    { values: pick((s) => s.storeMiB), color: COLORS.store },
  ]);
}

async function pollSamples(): Promise<void> {
  const { samples: fresh } = await getJson<{ samples: Sample[] }>(`/admin/api/samples?after=${lastSeq}`);
  if (fresh.length === 0) return;
  samples.push(...fresh);
  if (samples.length > KEEP) samples.splice(0, samples.length - KEEP);
  lastSeq = fresh.at(-1)!.seq;
  drawCharts();
}

// -- tables and rows ---------------------------------------------------------------------------

let tables: TableInfo[] = [];
const view = { table: '', offset: 0, limit: 50, sort: 'pk', desc: false };

function renderOverview(o: Overview): void {
  const s = o.status;
  const status = $('status');
  status.dataset.phase = s.phase;
  status.textContent = `${s.phase} · up ${formatDuration(s.uptimeSeconds)} · ${s.connections} connections · ${s.workers} workers${s.walFailed ? ` · write-ahead log failed: ${s.walFailed}` : ''}`;
  tables = o.tables;
  fill($<HTMLTableElement>('tables').tBodies[0]!, o.tables, (row, t) => {
    row.dataset.table = t.name;
    if (t.name === view.table) row.className = 'selected';
    cell(row, t.name);
    cell(row, String(t.rows), 'num');
    cell(row, String(t.versions), 'num');
    cell(row, String(t.bytes), 'num');
    row.addEventListener('click', () => openTable(t.name));
  });
  $('connections-count').textContent = `(${o.connections.total}${o.connections.total > o.connections.listed.length ? `, first ${o.connections.listed.length} shown` : ''})`;
  fill($<HTMLTableElement>('connections').tBodies[0]!, o.connections.listed, (row, c) => {
    cell(row, c.address);
    cell(row, c.auth ?? 'not authenticated', c.auth === null ? 'null' : '');
    cell(row, c.channels.join(', '));
    cell(row, String(c.bufferedBytes), 'num');
    cell(row, String(c.queuedUnits), 'num');
    cell(row, new Date(c.connectedAt).toLocaleTimeString());
  });
  $('channels-count').textContent = `(${o.channels.total}${o.channels.history ? '' : ', history off'})`;
  fill($<HTMLTableElement>('channels').tBodies[0]!, o.channels.listed, (row, c) => {
    cell(row, c.name);
    cell(row, String(c.subscribers), 'num');
    const p = c.position;
    cell(row, p ? p.epoch : '—');
    cell(row, p ? String(p.offset) : '—', 'num');
    cell(row, p ? String(p.oldest) : '—', 'num');
  });
}

function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

function openTable(name: string): void {
  if (view.table !== name) Object.assign(view, { table: name, offset: 0, sort: 'pk', desc: false });
  for (const tr of $<HTMLTableElement>('tables').tBodies[0]!.rows) tr.classList.toggle('selected', tr.dataset.table === name);
  void loadRows().catch((err: unknown) => showError(String((err as Error).message ?? err)));
}

async function loadRows(): Promise<void> {
  const q = new URLSearchParams({ table: view.table, offset: String(view.offset), limit: String(view.limit), sort: view.sort, desc: view.desc ? '1' : '0' });
  const page = await getJson<RowsPage>(`/admin/api/rows?${q}`);
  const info = tables.find((t) => t.name === page.table);
  if (!info) return;
  $('rows-view').hidden = false;
  $('rows-table').textContent = `${page.table} (${page.total} rows)`;
  const end = page.offset + page.rows.length;
  $('rows-range').textContent = page.rows.length === 0 ? 'no rows' : `rows ${page.offset + 1}–${end} of ${page.total}, by ${page.sort}${page.desc ? ' descending' : ''}`;
  $<HTMLButtonElement>('prev').disabled = page.offset === 0;
  $<HTMLButtonElement>('next').disabled = end >= page.total || page.rows.length < page.limit;
  const table = $<HTMLTableElement>('rows');
  const head = table.tHead!;
  head.replaceChildren();
  const hr = head.insertRow();
  for (const f of info.fields) {
    const th = document.createElement('th');
    th.textContent = f.secret ? `${f.name} (secret)` : f.name;
    th.title = f.kind;
    if (f.sortable) {
      th.className = 'sortable';
      if (f.name === view.sort) th.classList.add('sorted', ...(view.desc ? ['desc'] : []));
      th.addEventListener('click', () => {
        Object.assign(view, { desc: view.sort === f.name ? !view.desc : false, sort: f.name, offset: 0 });
        void loadRows().catch((err: unknown) => showError(String((err as Error).message ?? err)));
      });
    }
    hr.append(th);
  }
  fill(table.tBodies[0]!, page.rows, (row, r) => {
    for (const f of info.fields) {
      const v = r[f.name];
      if (v === null || v === undefined) cell(row, 'null', 'null');
      else if (f.secret && v === MASK) cell(row, MASK, 'secret');
      else cell(row, typeof v === 'string' ? v : JSON.stringify(v), typeof v === 'number' ? 'num' : '');
    }
  });
}

function wire(): void {
  $('prev').addEventListener('click', () => {
    view.offset = Math.max(0, view.offset - view.limit);
    void loadRows().catch((err: unknown) => showError(String((err as Error).message ?? err)));
  });
  $('next').addEventListener('click', () => {
    view.offset += view.limit;
    void loadRows().catch((err: unknown) => showError(String((err as Error).message ?? err)));
  });
  $<HTMLSelectElement>('page-size').addEventListener('change', (e) => {
    view.limit = Number((e.target as HTMLSelectElement).value);
    view.offset = 0;
    void loadRows().catch((err: unknown) => showError(String((err as Error).message ?? err)));
  });
}

/** Runs `task` now and then every `ms`, one at a time; errors are shown, and cleared on success. */
function every(ms: number, task: () => Promise<void>): void {
  const run = async (): Promise<void> => {
    try {
      await task();
      showError(null);
    } catch (err) {
      showError(String((err as Error).message ?? err));
    }
    setTimeout(() => void run(), ms);
  };
  void run();
}

wire();
every(1000, pollSamples);
every(3000, async () => {
  renderOverview(await getJson<Overview>('/admin/api/overview'));
  if (!view.table && tables[0]) openTable(tables[0].name);
});
window.addEventListener('resize', drawCharts);
