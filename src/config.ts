import path from 'node:path';
import { z } from 'zod';

/**
 * Everything the hub reads from its environment, validated once at start.
 * Nothing else in the code base reads process.env.
 */
export interface Config {
  /** HTTP port of the partner API. @defaultValue 8080 */
  port: number;
  /** Interface the API listens on. @defaultValue 0.0.0.0 */
  host: string;
  /** PostgreSQL to use; absent means the embedded PGlite under dataDir. */
  databaseUrl: string | undefined;
  /** Where the embedded database and generated keys live. @defaultValue ./data */
  dataDir: string;
  /** 32-byte key (base64 or hex) for partner credentials at rest; embedded default generates one under dataDir. */
  encryptionKey: string | undefined;
  /** Bearer token for /admin endpoints; embedded default generates one under dataDir. */
  adminToken: string | undefined;
  /** Largest request body accepted, in bytes. @defaultValue 1 MiB */
  bodyLimitBytes: number;
  /** How long authentication and tenancy lookups are cached, in ms. @defaultValue 5000 */
  cacheTtlMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Database pool size of one process. @defaultValue 10 */
  databasePoolSize: number;
  /** Processes `connector api` runs, sharing the port (node:cluster). @defaultValue 1 */
  apiProcesses: number;
  /** Redis for the delivery queues; absent means BullMQ's PostgreSQL backend on the hub's database. */
  redisUrl: string | undefined;
  delivery: DeliveryDefaults;
}

/** Delivery settings of a connection that turn-up does not set. */
export interface DeliveryDefaults {
  /** Jobs in flight per receiving connection. @defaultValue 5 */
  concurrency: number;
  /** Attempts before a delivery is dead-lettered. @defaultValue 12 */
  attempts: number;
  /** First retry delay; doubles per attempt (with jitter) up to 5 minutes. @defaultValue 1000 */
  backoffMs: number;
  /** Timeout of one partner call. @defaultValue 10000 */
  timeoutMs: number;
  /** How often the relay looks for new changes when not woken. @defaultValue 100 */
  relayIntervalMs: number;
  /** How often pending deliveries are checked against the queue. @defaultValue 30000 */
  reconcileIntervalMs: number;
  /** How long change events are kept after they are relayed. @defaultValue 7 days */
  eventRetentionMs: number;
}

const env = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgresql:// connection URL')
    .optional(),
  CONNECTOR_DATA_DIR: z.string().min(1).default('data'),
  CONNECTOR_ENCRYPTION_KEY: z.string().optional(),
  CONNECTOR_ADMIN_TOKEN: z.string().min(24, 'must be at least 24 characters').optional(),
  CONNECTOR_BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).default(1024 * 1024),
  CONNECTOR_CACHE_TTL_MS: z.coerce.number().int().min(0).default(5000),
  // Per process, for the save path's store and for Prisma each. Saves that arrive together share a
  // statement (group commit), so a few connections carry a process's whole load, and every backend
  // PostgreSQL runs beyond its cores costs it: README, "Where it stands" (the pool's size).
  CONNECTOR_DB_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(5),
  CONNECTOR_API_PROCESSES: z.coerce.number().int().min(1).max(64).default(1),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
  CONNECTOR_DELIVERY_CONCURRENCY: z.coerce.number().int().min(1).max(200).default(5),
  CONNECTOR_DELIVERY_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(12),
  CONNECTOR_DELIVERY_BACKOFF_MS: z.coerce.number().int().min(10).default(1000),
  CONNECTOR_DELIVERY_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  CONNECTOR_RELAY_INTERVAL_MS: z.coerce.number().int().min(10).default(100),
  CONNECTOR_RECONCILE_INTERVAL_MS: z.coerce.number().int().min(100).default(30_000),
  // At most 100 years: further back than that is out of PostgreSQL's timestamp range.
  CONNECTOR_EVENT_RETENTION_HOURS: z.coerce.number().min(0).max(876_000).default(168),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export class ConfigError extends Error {}

/** Reads and validates the environment; throws ConfigError naming every bad variable. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const parsed = env.safeParse(Object.fromEntries(Object.entries(source).filter(([, v]) => v !== '')));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.DATABASE_URL && !e.CONNECTOR_ENCRYPTION_KEY) {
    throw new ConfigError(
      'Invalid configuration:\n  CONNECTOR_ENCRYPTION_KEY: required when DATABASE_URL is set (32 bytes, base64 or hex; e.g. `openssl rand -base64 32`)',
    );
  }
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir: path.resolve(e.CONNECTOR_DATA_DIR),
    encryptionKey: e.CONNECTOR_ENCRYPTION_KEY,
    adminToken: e.CONNECTOR_ADMIN_TOKEN,
    bodyLimitBytes: e.CONNECTOR_BODY_LIMIT_BYTES,
    cacheTtlMs: e.CONNECTOR_CACHE_TTL_MS,
    logLevel: e.LOG_LEVEL,
    databasePoolSize: e.CONNECTOR_DB_POOL_SIZE,
    apiProcesses: e.CONNECTOR_API_PROCESSES,
    redisUrl: e.REDIS_URL,
    delivery: {
      concurrency: e.CONNECTOR_DELIVERY_CONCURRENCY,
      attempts: e.CONNECTOR_DELIVERY_ATTEMPTS,
      backoffMs: e.CONNECTOR_DELIVERY_BACKOFF_MS,
      timeoutMs: e.CONNECTOR_DELIVERY_TIMEOUT_MS,
      relayIntervalMs: e.CONNECTOR_RELAY_INTERVAL_MS,
      reconcileIntervalMs: e.CONNECTOR_RECONCILE_INTERVAL_MS,
      eventRetentionMs: e.CONNECTOR_EVENT_RETENTION_HOURS * 3_600_000,
    },
  };
}
