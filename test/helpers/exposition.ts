/**
 * Strict parsers of the two metrics expositions, for tests: OpenMetrics 1.0 (the rules of the
 * specification's MUSTs, as the reference parser of the Prometheus Python client enforces them:
 * `# EOF`, no blank lines, one HELP/TYPE/UNIT per family before its samples, no family name or
 * suffix used twice, e.g. a gauge `x` next to a counter `x_total`, sample names by type, label
 * syntax and escapes, canonical `+Inf`, histogram bucket order and counts, contiguous groups,
 * counter-like values neither negative nor NaN) and the Prometheus text format 0.0.4 (HELP/TYPE
 * once and before the samples, valid names, labels and values, no duplicate series, histogram
 * consistency). Each throws an Error naming the line on the first violation.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string | undefined;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function fail(message: string, line: string): never {
  throw new Error(`${message}: ${JSON.stringify(line)}`);
}

/** Numbers as the reference parsers read them (`Inf`, `NaN` in any case, as ABNF strings are). */
function parseValue(text: string, line: string): number {
  if (/^\+?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  if (!NUMBER.test(text)) fail(`invalid value ${JSON.stringify(text)}`, line);
  return Number(text);
}

/** `name{a="x",b="y"} value [timestamp]` with the escapes \\, \n and \" only. */
function parseSample(line: string): Sample {
  let i = 0;
  while (i < line.length && line[i] !== '{' && line[i] !== ' ') i++;
  const name = line.slice(0, i);
  if (!METRIC_NAME.test(name)) fail('invalid metric name', line);
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    while (line[i] !== '}') {
      const eq = line.indexOf('="', i);
      if (eq < 0) fail('invalid labels', line);
      const label = line.slice(i, eq);
      if (!LABEL_NAME.test(label)) fail(`invalid label name ${JSON.stringify(label)}`, line);
      if (label in labels) fail(`duplicate label ${label}`, line);
      i = eq + 2;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) fail('unterminated label value', line);
        if (c === '"') break;
        if (c === '\\') {
          const next = line[i + 1];
          if (next === '\\') value += '\\';
          else if (next === 'n') value += '\n';
          else if (next === '"') value += '"';
          else fail('invalid escape in label value', line);
          i += 2;
        } else {
          value += c;
          i++;
        }
      }
      labels[label] = value;
      i++;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') fail('expected , or } after a label', line);
    }
    i++;
  }
  if (line[i] !== ' ') fail('expected one space before the value', line);
  const rest = line.slice(i + 1).split(' ');
  if (rest.length > 2 || rest.some((p) => p === '')) fail('invalid value or timestamp', line);
  return { name, labels, value: parseValue(rest[0]!, line) };
}

function seriesKey(s: Sample): string {
  return `${s.name}${JSON.stringify(Object.entries(s.labels).sort())}`;
}

function groupKey(s: Sample): string {
  const { le: _le, quantile: _q, ...rest } = s.labels;
  return JSON.stringify(Object.entries(rest).sort());
}

function checkHistogram(family: Family, om: boolean): void {
  const groups = new Map<string, Sample[]>();
  for (const s of family.samples) {
    const key = groupKey(s);
    let list = groups.get(key);
    if (!list) groups.set(key, (list = []));
    list.push(s);
  }
  for (const samples of groups.values()) {
    let bound = -Infinity;
    let last = 0;
    let inf: number | undefined;
    let count: number | undefined;
    let sum = false;
    for (const s of samples) {
      const suffix = s.name.slice(family.name.length);
      if (suffix === '_bucket') {
        const le = s.labels.le;
        if (le === undefined || le === 'NaN') fail('bucket without a valid le label', s.name);
        const b = parseValue(le, s.name);
        if (om && b === Infinity && le !== '+Inf') fail('le of the +Inf bucket is not canonical', le);
        if (b <= bound) fail(`buckets out of order in ${family.name}`, le);
        if (s.value < last) fail(`bucket counts decrease in ${family.name}`, le);
        bound = b;
        last = s.value;
        if (b === Infinity) inf = s.value;
      } else if (suffix === '_count') count = s.value;
      else if (suffix === '_sum') sum = true;
    }
    if (inf === undefined) fail('+Inf bucket missing', family.name);
    if (count !== undefined && count !== inf) fail('_count differs from the +Inf bucket', family.name);
    if (sum && count === undefined) fail('_sum without _count', family.name);
  }
}

const OM_SUFFIXES: Record<string, string[]> = {
  counter: ['_total', '_created'],
  summary: ['', '_count', '_sum', '_created'],
  histogram: ['_count', '_sum', '_bucket', '_created'],
  gaugehistogram: ['_gcount', '_gsum', '_bucket'],
  info: ['_info'],
};
const OM_TYPES = ['counter', 'gauge', 'histogram', 'gaugehistogram', 'summary', 'info', 'stateset', 'unknown'];

/** Parses an OpenMetrics 1.0 text exposition strictly; returns its families by name. */
export function parseOpenMetrics(text: string): Map<string, Family> {
  if (!text.endsWith('# EOF\n')) throw new Error('OpenMetrics: the exposition must end with "# EOF\\n"');
  const lines = text.slice(0, -'# EOF\n'.length).split('\n');
  lines.pop(); // the text before "# EOF" ends with a newline
  const families = new Map<string, Family>();
  const taken = new Set<string>();
  let current: Family | undefined;
  let unit: string | undefined;
  let seenGroups = new Set<string>();
  let group: string | undefined;
  let series = new Set<string>();

  const close = () => {
    if (!current) return;
    for (const suffix of new Set([...(OM_SUFFIXES[current.type] ?? []), ''])) {
      if (taken.has(current.name + suffix)) throw new Error(`OpenMetrics: clashing name ${current.name + suffix}`);
      taken.add(current.name + suffix);
    }
    if (unit && !current.name.endsWith(`_${unit}`)) throw new Error(`OpenMetrics: unit ${unit} does not match ${current.name}`);
    if (current.type === 'histogram' || current.type === 'gaugehistogram') checkHistogram(current, true);
    families.set(current.name, current);
  };
  const open = (name: string, type: string) => {
    close();
    current = { name, type, help: undefined, samples: [] };
    unit = undefined;
    seenGroups = new Set();
    group = undefined;
    series = new Set();
  };
  const typed = new Set<string>();

  for (const line of lines) {
    if (line === '') fail('OpenMetrics: blank line', line);
    if (line.startsWith('#')) {
      const parts = line.split(' ');
      const [hash, kind, name] = parts;
      if (hash !== '#' || parts.length < 4 || !name || !METRIC_NAME.test(name)) fail('OpenMetrics: invalid metadata line', line);
      if (name !== current?.name) open(name, 'unknown');
      const fam = current!;
      if (fam.samples.length > 0) fail('OpenMetrics: metadata after samples', line);
      const rest = parts.slice(3).join(' ');
      if (kind === 'HELP') {
        if (fam.help !== undefined) fail('OpenMetrics: second HELP', line);
        fam.help = rest;
      } else if (kind === 'TYPE') {
        if (typed.has(name)) fail('OpenMetrics: second TYPE', line);
        if (!OM_TYPES.includes(rest)) fail('OpenMetrics: invalid type', line);
        typed.add(name);
        fam.type = rest;
      } else if (kind === 'UNIT') {
        if (unit !== undefined) fail('OpenMetrics: second UNIT', line);
        unit = rest;
      } else fail('OpenMetrics: unknown metadata', line);
      continue;
    }
    const sample = parseSample(line);
    const allowed = (OM_SUFFIXES[current?.type ?? ''] ?? ['']).map((s) => (current?.name ?? '') + s);
    if (!current || !allowed.includes(sample.name)) open(sample.name, 'unknown');
    const fam = current!;
    const suffix = sample.name.slice(fam.name.length);
    if ((fam.type === 'histogram' || fam.type === 'gaugehistogram') && suffix === '_bucket' && sample.labels.le === undefined) fail('OpenMetrics: bucket without le', line);
    if (['_total', '_sum', '_count', '_bucket', '_gcount'].includes(suffix) && (Number.isNaN(sample.value) || sample.value < 0)) {
      fail('OpenMetrics: counter-like sample negative or NaN', line);
    }
    if (fam.type === 'info' && sample.value !== 1) fail('OpenMetrics: info value must be 1', line);
    const g = groupKey(sample);
    if (g !== group && seenGroups.has(g)) fail('OpenMetrics: samples of one label set are not contiguous', line);
    group = g;
    seenGroups.add(g);
    const key = seriesKey(sample);
    if (series.has(key)) fail('OpenMetrics: duplicate series', line);
    series.add(key);
    fam.samples.push(sample);
  }
  close();
  return families;
}

const PROM_TYPES = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

/** Parses a Prometheus text 0.0.4 exposition strictly; returns its families by name. */
export function parsePrometheusText(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('Prometheus text: the exposition must end with a newline');
  const families = new Map<string, Family>();
  const series = new Set<string>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: 'untyped', help: undefined, samples: [] }));
    return f;
  };
  const typed = new Set<string>();
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      const [, kind, name, rest = ''] = m as unknown as [string, string, string, string | undefined];
      if (!METRIC_NAME.test(name)) fail('Prometheus text: invalid metric name', line);
      const f = family(name);
      if (kind === 'HELP') {
        if (f.help !== undefined) fail('Prometheus text: second HELP', line);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) fail('Prometheus text: invalid escape in HELP', line);
        f.help = rest;
      } else {
        if (typed.has(name) || f.samples.length > 0) fail('Prometheus text: second TYPE, or TYPE after samples', line);
        if (!PROM_TYPES.includes(rest)) fail('Prometheus text: invalid type', line);
        typed.add(name);
        f.type = rest;
      }
      continue;
    }
    const sample = parseSample(line);
    let owner = families.get(sample.name);
    for (const suffix of ['_bucket', '_sum', '_count']) {
      if (owner || !sample.name.endsWith(suffix)) continue;
      const base = families.get(sample.name.slice(0, -suffix.length));
      if (base && (base.type === 'histogram' || (base.type === 'summary' && suffix !== '_bucket'))) owner = base;
    }
    owner ??= family(sample.name);
    if (owner.type === 'histogram' && sample.name === owner.name) fail('Prometheus text: histogram sample without suffix', line);
    const key = seriesKey(sample);
    if (series.has(key)) fail('Prometheus text: duplicate series', line);
    series.add(key);
    owner.samples.push(sample);
  }
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f, false);
  return families;
}
