/**
 * @module bench/loadgen/proc-stats
 * Server-side cost from /proc: CPU seconds (utime + stime of a process and all its descendants,
 * so a CLI wrapper or forked workers count too) and peak resident memory (VmHWM, summed over the
 * tree). Linux only; elsewhere every figure reads as 0.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let ticks = 0;

/** Clock ticks per second (`getconf CLK_TCK`, 100 on Linux). */
function clockTicks(): number {
  if (ticks === 0) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100; // getconf missing: the Linux default
    }
  }
  return ticks;
}

interface StatLine {
  ppid: number;
  cpuTicks: number;
}

function readStat(pid: number): StatLine | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null; // the process is gone
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
}

/** `pid` and all its descendants alive now. */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [pid];
  }
  for (const name of entries) {
    const child = Number(name);
    if (!Number.isInteger(child)) continue;
    const stat = readStat(child);
    if (stat === null) continue;
    const list = parents.get(stat.ppid);
    if (list) list.push(child);
    else parents.set(stat.ppid, [child]);
  }
  const tree: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    tree.push(p);
    for (const c of parents.get(p) ?? []) stack.push(c);
  }
  return tree;
}

/** CPU seconds (user + system) used so far by `pid` and its descendants. */
export function cpuSeconds(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) total += readStat(p)?.cpuTicks ?? 0;
  return total / clockTicks();
}

/** A `/proc/<pid>/status` field in kB (VmHWM, VmRSS), or 0. */
function statusKb(pid: number, field: string): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Peak resident set (VmHWM) of `pid` and its descendants, in MiB. */
export function peakRssMiB(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) kb += statusKb(p, 'VmHWM');
  return kb / 1024;
}

/** Current resident set (VmRSS) of `pid` and its descendants, in MiB. */
export function rssMiB(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) kb += statusKb(p, 'VmRSS');
  return kb / 1024;
}

/** CPU seconds the whole machine has been busy (all cores; /proc/stat, everything but idle and iowait). */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - (f[3] ?? 0) - (f[4] ?? 0)) / clockTicks();
  } catch {
    return 0;
  }
}
