import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cpuSeconds, cpuSpent, machineCpu, processTree } from '../../bench/process-cpu.ts';

// The benchmarks' CPU-time figures (per request, per delivery) rest on these readings of /proc.
describe.runIf(process.platform === 'linux')('process CPU time from /proc', () => {
  it('counts the CPU time a process tree spends, children included, and nothing while it sleeps', async () => {
    // A child that keeps one core busy for 400 ms, then sleeps.
    const child = spawn(process.execPath, ['-e', 'const end = Date.now() + 400; while (Date.now() < end); setTimeout(() => {}, 60_000)']);
    try {
      const parts = { child: { tree: process.pid } };
      const before = cpuSeconds(parts);
      await new Promise((r) => setTimeout(r, 900));
      const busy = cpuSpent(before, cpuSeconds(parts)).child!;
      // The child's 400 ms of spinning is in this process's tree (plus its own start-up).
      expect(busy).toBeGreaterThanOrEqual(0.35);
      expect(processTree(process.pid)).toContain(child.pid);

      const idle = cpuSeconds({ child: { tree: child.pid! } });
      await new Promise((r) => setTimeout(r, 300));
      expect(cpuSpent(idle, cpuSeconds({ child: { tree: child.pid! } })).child).toBeLessThan(0.05);
    } finally {
      child.kill();
    }
  });

  it('finds the processes of a program by name, and says undefined for a program that is not running', () => {
    const node = cpuSeconds({ node: { program: 'node' }, none: { program: 'no-such-program' } });
    expect(node.node).toBeGreaterThan(0);
    expect(node.none).toBeUndefined();
    expect(cpuSpent(node, { node: node.node, none: undefined })).toEqual({ node: 0, none: undefined });
  });

  it('reads the machine total, which only grows', () => {
    const a = machineCpu()!;
    const b = machineCpu()!;
    expect(a.busy + a.idle).toBeGreaterThan(0);
    expect(b.busy + b.idle + b.steal).toBeGreaterThanOrEqual(a.busy + a.idle + a.steal);
  });
});
