import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../log.ts';

/**
 * `connector api` across several processes on one port (node:cluster): the
 * primary only forks and watches. A process that dies is replaced; one that
 * dies before it ever listened means the hub cannot start (configuration,
 * database), so the others are stopped and the primary exits with its code
 * instead of forking forever. SIGTERM/SIGINT are passed on, and each process
 * drains its requests as a single one does.
 */
export async function serveApiCluster(processes: number, logger: Logger): Promise<number> {
  let stopping = false;
  let failure: number | undefined;
  const live = new Set<Worker>();
  const listening = new WeakSet<Worker>();
  const fork = () => {
    const worker = cluster.fork();
    live.add(worker);
    worker.once('listening', () => listening.add(worker));
  };
  const stopAll = (signal: NodeJS.Signals) => {
    for (const worker of live) worker.process.kill(signal);
  };
  const exited = new Promise<void>((resolve) => {
    cluster.on('exit', (worker, code, signal) => {
      live.delete(worker);
      if (!stopping) {
        if (!listening.has(worker)) {
          failure = code || 1;
          stopping = true;
          logger.error({ pid: worker.process.pid, code }, 'an API process exited before it listened; stopping the others');
          stopAll('SIGTERM');
        } else {
          logger.error({ pid: worker.process.pid, code, signal }, 'an API process died; starting another');
          fork();
        }
      }
      if (live.size === 0) resolve();
    });
  });
  for (let i = 0; i < processes; i++) fork();
  logger.info({ processes }, 'API processes started');
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      stopping = true;
      logger.info({ signal }, 'stopping the API processes');
      stopAll('SIGTERM');
    });
  }
  await exited;
  return failure ?? 0;
}
