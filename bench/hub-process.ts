import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { processTree } from './process-cpu.ts';

export const CLI = path.resolve(import.meta.dirname, '../bin/connector.js');

export interface HubChild {
  url: string;
  child: ChildProcess;
  /** Resident memory of the hub process in MiB (from /proc). */
  rssMiB(): number;
  stop(): Promise<void>;
}

/** Starts `connector <command>` as its own process (optionally pinned to CPUs) and waits for it to listen. */
export async function startHubChild(env: Record<string, string>, options: { command?: string; cpus?: string } = {}): Promise<HubChild> {
  // BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=bench/.out" profiles the hub under load.
  // Node's options: exactly npm start's for the embedded default, the Dockerfile's and the connector
  // command's otherwise (bin/connector.js says why they differ).
  const command = options.command ?? 'start';
  const nodeOptions = command === 'start' ? npmStartNodeOptions() : ['--max-semi-space-size=16'];
  const args = [...nodeOptions, ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []), CLI, command];
  const child = options.cpus
    ? spawn('taskset', ['-c', options.cpus, process.execPath, ...args], { env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    const lines: string[] = [];
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`hub did not start:\n${lines.join('\n')}`));
    }, 60_000);
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        lines.push(line);
        if (line.includes('Connector API listening')) {
          clearTimeout(timer);
          resolve(`http://127.0.0.1:${JSON.parse(line).port}`);
        }
        if (/"level":(50|60)/.test(line)) process.stderr.write(`hub: ${line}\n`);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`hub exited with ${code}:\n${lines.join('\n')}`)));
  });
  return {
    url,
    child,
    rssMiB() {
      // taskset execs node, so the child's pid is the hub's; with CONNECTOR_API_PROCESSES > 1 its
      // cluster workers are its children, counted too.
      return processTree(child.pid!).reduce((sum, pid) => sum + rssKiB(pid), 0) / 1024;
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

/** The options `npm start` gives node (package.json's start script, between `node` and the script). */
export function npmStartNodeOptions(): string[] {
  const { scripts } = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../package.json'), 'utf8')) as { scripts: { start: string } };
  const words = scripts.start.split(/\s+/);
  const script = words.indexOf('bin/connector.js');
  if (words[0] !== 'node' || script < 0) throw new Error(`npm start runs something other than node bin/connector.js: ${scripts.start}`);
  return words.slice(1, script);
}

function rssKiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}
