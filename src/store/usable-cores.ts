import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

/**
 * How many cores this process can keep busy: the CPUs it may run on (its
 * affinity, as `taskset` sets it) and, in a container, its CPU quota.
 * `docker run --cpus=1` on an eight-core host gives the process one core's
 * worth of time on any of the eight, which Node 20's availableParallelism()
 * does not see.
 */
export function usableCores(quota: number | undefined = cgroupCpuQuota()): number {
  const cpus = availableParallelism();
  return quota === undefined ? cpus : Math.max(1, Math.min(cpus, Math.floor(quota)));
}

/**
 * The process's CPU quota in cores (1.5 for `--cpus=1.5`), or undefined
 * when it has none or none can be read. The smallest quota on the way from
 * the process's control group up to the hierarchy's root: cgroup v2's
 * `cpu.max`, or v1's `cpu.cfs_quota_us` over `cpu.cfs_period_us`. In a
 * container the hierarchy's root is the container's own group.
 */
export function cgroupCpuQuota(root = '/sys/fs/cgroup', selfCgroup = readText('/proc/self/cgroup')): number | undefined {
  // "<id>:<controllers>:<path>"; the path may hold colons of its own.
  const lines = (selfCgroup ?? '').split('\n').map((line) => {
    const [id, controllers, ...rest] = line.split(':');
    return [id, controllers, rest.join(':')];
  });
  const v2Path = lines.find(([id, controllers]) => id === '0' && controllers === '')?.[2];
  const v1Path = lines.find(([, controllers]) => controllers?.split(',').includes('cpu'))?.[2];
  const quotas = [
    ...groupsUp(root, v2Path).map((dir) => v2Quota(readText(path.join(dir, 'cpu.max')))),
    ...groupsUp(path.join(root, 'cpu'), v1Path).map((dir) => v1Quota(readText(path.join(dir, 'cpu.cfs_quota_us')), readText(path.join(dir, 'cpu.cfs_period_us')))),
  ].filter((q): q is number => q !== undefined);
  return quotas.length ? Math.min(...quotas) : undefined;
}

/** `cpu.max`: "<quota> <period>" in microseconds, or "max <period>" (no quota). */
function v2Quota(text: string | undefined): number | undefined {
  const [quota, period] = text?.split(/\s+/) ?? [];
  return quota === undefined || quota === 'max' ? undefined : positiveRatio(quota, period);
}

/** v1: a quota of -1 is none. */
function v1Quota(quota: string | undefined, period: string | undefined): number | undefined {
  return quota === undefined || Number(quota) < 0 ? undefined : positiveRatio(quota, period);
}

function positiveRatio(quota: string, period: string | undefined): number | undefined {
  const ratio = Number(quota) / Number(period);
  return Number.isFinite(ratio) && ratio > 0 ? ratio : undefined;
}

/**
 * `mount` and the folders from it down to the group's. In a container the
 * mount is the container's own group and the path may name groups of the
 * host that are not under it: those folders do not exist, and the mount's
 * quota is the one read. A path that climbs out (`..`, a process outside
 * its cgroup namespace) gives just the mount.
 */
function groupsUp(mount: string, groupPath: string | undefined): string[] {
  const dirs = [mount];
  const parts = (groupPath ?? '').split('/').filter(Boolean);
  if (parts.includes('..')) return dirs;
  for (let i = 1; i <= parts.length; i++) dirs.push(path.join(mount, ...parts.slice(0, i)));
  return dirs;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}
