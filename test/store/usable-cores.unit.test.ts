import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os, { availableParallelism } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cgroupCpuQuota, usableCores } from '../../src/store/usable-cores.ts';

describe('the cores the process can use', () => {
  const roots: string[] = [];
  afterEach(() => {
    for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
  });

  /** A fake /sys/fs/cgroup: file path (relative to the root) to content. */
  function cgroupTree(files: Record<string, string>): string {
    const root = mkdtempSync(path.join(os.tmpdir(), 'connector-cgroup-'));
    roots.push(root);
    for (const [file, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), `${content}\n`);
    }
    return root;
  }

  it('reads a cgroup v2 quota in cores, the smallest on the way up from the process’s group', () => {
    const tree = cgroupTree({ 'cpu.max': 'max 100000', 'app/cpu.max': '300000 100000', 'app/hub/cpu.max': '150000 100000' });
    expect(cgroupCpuQuota(tree, '0::/app/hub')).toBe(1.5);
    expect(cgroupCpuQuota(tree, '0::/app')).toBe(3);
  });

  it('reads a container’s own group when the process’s path is not under the mount', () => {
    const tree = cgroupTree({ 'cpu.max': '100000 100000' });
    expect(cgroupCpuQuota(tree, '0::/')).toBe(1);
    expect(cgroupCpuQuota(tree, '0::/docker/3f2a')).toBe(1);
    // A process outside its cgroup namespace's root sees a path that climbs out: the mount is read, nothing above it.
    const outside = cgroupTree({ 'ns/cpu.max': '100000 100000', 'cpu.max': 'max 100000', 'x/cpu.max': '300000 100000' });
    expect(cgroupCpuQuota(path.join(outside, 'ns'), '0::/../x')).toBe(1);
  });

  it('reads a group whose path holds a colon', () => {
    const tree = cgroupTree({ 'a:b/cpu.max': '200000 100000' });
    expect(cgroupCpuQuota(tree, '0::/a:b')).toBe(2);
  });

  it('reads a cgroup v1 quota (-1 is none)', () => {
    const tree = cgroupTree({
      'cpu/cpu.cfs_quota_us': '-1',
      'cpu/cpu.cfs_period_us': '100000',
      'cpu/kubepods/pod1/cpu.cfs_quota_us': '50000',
      'cpu/kubepods/pod1/cpu.cfs_period_us': '100000',
    });
    const selfCgroup = ['12:memory:/kubepods/pod1', '4:cpu,cpuacct:/kubepods/pod1', '0::/'].join('\n');
    expect(cgroupCpuQuota(tree, selfCgroup)).toBe(0.5);
    expect(cgroupCpuQuota(tree, '4:cpu,cpuacct:/')).toBeUndefined();
  });

  it('has no quota when there is none, or nothing to read', () => {
    expect(cgroupCpuQuota(cgroupTree({ 'cpu.max': 'max 100000' }), '0::/')).toBeUndefined();
    expect(cgroupCpuQuota(cgroupTree({}), '0::/app')).toBeUndefined();
    expect(cgroupCpuQuota(cgroupTree({ 'cpu.max': 'garbage' }), '0::/')).toBeUndefined();
    expect(cgroupCpuQuota(cgroupTree({ 'cpu.max': '100000 100000' }), '')).toBe(1);
  });

  it('counts whole cores of the quota, at least one, and never more than the CPUs it may run on', () => {
    const cpus = availableParallelism();
    expect(usableCores(Number.POSITIVE_INFINITY)).toBe(cpus);
    expect(usableCores(0.5)).toBe(1);
    expect(usableCores(1.5)).toBe(1);
    expect(usableCores(cpus + 4)).toBe(cpus);
    if (cpus > 1) expect(usableCores(2)).toBe(2);
  });
});
