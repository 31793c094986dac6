import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of processes, read from /proc (Linux; elsewhere every figure is
 * undefined and the benchmarks leave the rows out). A rate says how much
 * got done; CPU time per request or per delivery says what each process
 * spent on it, so a run shows where its time went (the hub, PostgreSQL,
 * Redis, the fake partner) and what the machine's cores could reach at that
 * cost. It leaves out time a process waited for a core, not a host whose
 * every instruction is slower (a busy physical machine under a VM).
 */

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux this runs on). */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime, in ticks. */
  cpuTicks: number;
}

function readStat(pid: number | string): ProcStat | undefined {
  try {
    // "pid (comm) state ppid ... utime stime ...": comm may hold spaces, so fields are read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    return { pid: Number(pid), ppid: Number(fields[1]), comm: stat.slice(stat.indexOf('(') + 1, close), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined; // exited meanwhile, or no /proc
  }
}

function allProcesses(): ProcStat[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries.filter((e) => /^\d+$/.test(e)).flatMap((e) => readStat(e) ?? []);
}

/** A process and all its descendants. */
export function processTree(root: number): number[] {
  return treeOf(root, allProcesses());
}

function treeOf(root: number, all: ProcStat[]): number[] {
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const p of all) if (p.ppid === tree[i]) tree.push(p.pid);
  return tree;
}

/** Which processes make up one part of a run: a process tree, or every process of a program (`postgres`). */
export type Part = { tree: number } | { program: string };

/** CPU seconds used so far by each part, by name; undefined for a part with no process found. */
export function cpuSeconds(parts: Record<string, Part>): Record<string, number | undefined> {
  const all = allProcesses();
  const out: Record<string, number | undefined> = {};
  for (const [name, part] of Object.entries(parts)) {
    let members: ProcStat[];
    if ('tree' in part) {
      const pids = new Set(treeOf(part.tree, all));
      members = all.filter((p) => pids.has(p.pid));
    } else {
      members = all.filter((p) => p.comm === part.program);
    }
    out[name] = members.length ? members.reduce((sum, p) => sum + p.cpuTicks, 0) / TICKS_PER_SECOND : undefined;
  }
  return out;
}

/** CPU seconds each part used between two readings of cpuSeconds. */
export function cpuSpent(before: Record<string, number | undefined>, after: Record<string, number | undefined>): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  for (const name of Object.keys(after)) {
    const [a, b] = [before[name], after[name]];
    out[name] = a === undefined || b === undefined ? undefined : b - a;
  }
  return out;
}

/** The whole machine's CPU seconds so far: busy (user, system, interrupts), idle, and stolen by the hypervisor. */
export function machineCpu(): { busy: number; idle: number; steal: number } | undefined {
  try {
    const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = fields.map(Number);
    return { busy: (user + nice + system + irq + softirq) / TICKS_PER_SECOND, idle: (idle + iowait) / TICKS_PER_SECOND, steal: (steal ?? 0) / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}
