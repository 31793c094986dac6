import { Queue, Worker, withBackend, createPostgresBackend, type QueueOptions, type WorkerOptions } from 'bullmq';
import { Redis } from 'ioredis';
import { POOL_WAIT_MS } from '../store/sql-sessions.ts';

/**
 * BullMQ on one of its two backends, chosen by configuration: Redis when
 * REDIS_URL is set (production), otherwise BullMQ's PostgreSQL backend on
 * the hub's own database (the embedded default, Postgres-only deployments).
 * The rest of the engine sees only these Queue/Worker constructors.
 */
export interface QueueBackend {
  kind: 'redis' | 'postgres';
  createQueue(name: string): Queue;
  createWorker(name: string, processor: ConstructorParameters<typeof Worker>[1], options: Omit<WorkerOptions, 'connection'>): Worker;
  close(): Promise<void>;
}

export class RedisPolicyError extends Error {}

/** BullMQ loses jobs when Redis evicts keys: refuse anything but noeviction. */
export async function assertNoEviction(redisUrl: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    const info = await redis.info('memory');
    const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
    if (policy && policy !== 'noeviction') {
      throw new RedisPolicyError(`Redis maxmemory-policy is ${policy}; the delivery queues need noeviction (an evicted key is a lost delivery)`);
    }
  } finally {
    redis.disconnect();
  }
}

/** How the queue's sessions show in pg_stat_activity, apart from the hub's own. */
export const QUEUE_SESSION_NAME = 'connector-queues';

/**
 * How BullMQ's PostgreSQL backend connects: its own small pool per queue or
 * worker, whose sessions commit without waiting for the WAL flush
 * (synchronous_commit off). The queue is derived state: a delivery's row is
 * the record, written by the hub's own sessions, which still wait for the
 * flush; a job lost with the last moments before a database crash is put
 * back by the reconciler, as one lost with an emptied Redis is. Each claim
 * holds a per-queue lock until its commit (every delivery worker has a
 * limiter), so not waiting there takes ~25% more deliveries per second.
 * The sessions are named (QUEUE_SESSION_NAME), so an operator can tell
 * them from the hub's own in pg_stat_activity. A queue call waits for one of
 * the pool's connections at most `waitMs` (POOL_WAIT_MS, as the hub's own
 * pools) and then fails: a relay run's queue add is made again by the
 * reconciler (its deliveries are committed), a worker's fetch by BullMQ's
 * loop. BullMQ's waiting for jobs (LISTEN) has a connection of its
 * own, outside the pool.
 */
export function postgresQueueConnection(databaseUrl: string, waitMs = POOL_WAIT_MS) {
  return {
    connectionString: databaseUrl,
    migrate: true,
    max: 3,
    connectionTimeoutMillis: waitMs,
    application_name: QUEUE_SESSION_NAME,
    options: '-c synchronous_commit=off',
  };
}

/**
 * `embedded`: the database is PGlite behind its socket, which does not pass
 * LISTEN/NOTIFY wake-ups to other connections, so idle workers poll
 * (every 250 ms) instead of blocking for BullMQ's default 5 s.
 */
export async function createQueueBackend(options: { redisUrl?: string; databaseUrl: string; embedded?: boolean; poolWaitMs?: number }): Promise<QueueBackend> {
  if (options.redisUrl) {
    await assertNoEviction(options.redisUrl);
    const url = options.redisUrl;
    // Queues share one connection; each Worker needs its own blocking one.
    const shared = coalesceWrites(new Redis(url, { maxRetriesPerRequest: null }));
    const workerConnections: Redis[] = [];
    return {
      kind: 'redis',
      createQueue: (name) => new Queue(name, { connection: shared } as QueueOptions),
      createWorker: (name, processor, workerOptions) => {
        const connection = coalesceWrites(new Redis(url, { maxRetriesPerRequest: null }));
        workerConnections.push(connection);
        return new Worker(name, processor, { ...workerOptions, connection } as WorkerOptions);
      },
      async close() {
        shared.disconnect();
        for (const c of workerConnections) c.disconnect();
      },
    };
  }
  const postgres = withBackend(createPostgresBackend);
  const connection = postgresQueueConnection(options.databaseUrl, options.poolWaitMs);
  return {
    kind: 'postgres',
    createQueue: (name) => new postgres.Queue(name, { connection }) as unknown as Queue,
    createWorker: (name, processor, workerOptions) =>
      new postgres.Worker(name, processor as never, { ...workerOptions, ...(options.embedded ? { drainDelay: 0.25 } : {}), connection } as never) as unknown as Worker,
    async close() {},
  };
}

/**
 * Commands a connection is given before the process's next tick (one
 * callback and the promise reactions it sets off) leave in one write.
 * ioredis writes each command to its socket on its own, one system call
 * apiece: a batch of finished deliveries (the delivery store answers them
 * together, and their jobs complete in one run of promise reactions) then
 * made one write per job, and Redis one read and one reply apiece. Held
 * (corked) until the next tick, they go out together: the same commands, in
 * the same order, and the same replies, in fewer system calls at both ends
 * (~9 % less Redis time per delivery). Not ioredis's auto-pipelining, which
 * turns the commands into pipelines, a mode BullMQ's maintainers advise
 * against.
 */
export function coalesceWrites(redis: Redis): Redis {
  // Each connect brings a new socket (a reconnect too).
  redis.on('connect', () => {
    const socket = redis.stream;
    const write = socket.write;
    let held = false;
    const release = () => {
      held = false;
      socket.uncork();
    };
    socket.write = function (this: typeof socket, ...args: Parameters<typeof socket.write>) {
      if (!held) {
        held = true;
        socket.cork();
        process.nextTick(release);
      }
      return write.apply(this, args);
    } as typeof socket.write;
  });
  return redis;
}
