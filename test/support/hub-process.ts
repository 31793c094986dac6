import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';

export const CLI = path.resolve(import.meta.dirname, '../../bin/connector.js');

export interface HubProcess {
  child: ChildProcess;
  url: string;
  logs: string[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** Starts `connector start` (or `api`, `worker`) as a real process and waits until it is ready. */
export async function startHubProcess(env: Record<string, string>, command = 'start'): Promise<HubProcess> {
  const readyLine = command === 'worker' ? 'delivery engine started' : 'Connector API listening';
  const child = spawn(process.execPath, [CLI, command], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hub did not start:\n${logs.join('\n')}`)), 60_000);
    const onLine = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        logs.push(line);
        if (line.includes(readyLine)) {
          clearTimeout(timer);
          resolve(command === 'worker' ? '' : `http://127.0.0.1:${JSON.parse(line).port}`);
        }
      }
    };
    child.stdout!.on('data', onLine);
    child.stderr!.on('data', onLine);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`hub exited with ${code}:\n${logs.join('\n')}`));
    });
  });
  return { child, url, logs, exited };
}

/** Runs a one-shot `connector …` command. */
export async function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const [code] = await once(child, 'exit');
  return { code: code as number | null, stdout, stderr };
}
