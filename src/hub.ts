import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Config } from './config.ts';
import type { Logger } from './log.ts';
import { appServer, createApp } from './api/app.ts';
import { localSecret } from './security/local-secrets.ts';
import { SecretBox, generateKey } from './security/secret-box.ts';
import { createHubServices, type HubServices } from './services/hub-services.ts';
import { verifyEncryptionKey } from './services/key-check.ts';
import { openDatabase, type Database } from './store/database.ts';
import { DeliveryEngine } from './delivery/delivery-engine.ts';
import { lazyRequeue } from './delivery/requeue.ts';

export interface HubSecrets {
  secretBox: SecretBox;
  adminToken: string | undefined;
}

/** Keys from configuration; on the embedded default, generated once under the data folder. */
export function resolveSecrets(config: Config, logger?: Logger): HubSecrets {
  const embedded = !config.databaseUrl;
  let key = config.encryptionKey;
  if (!key && embedded) {
    const local = localSecret(config.dataDir, 'encryption.key', generateKey);
    if (local.created) logger?.info({ file: local.file }, 'generated an encryption key for partner credentials');
    key = local.value;
  }
  let adminToken = config.adminToken;
  if (!adminToken && embedded) {
    const local = localSecret(config.dataDir, 'admin.token', () => randomBytes(24).toString('hex'));
    if (local.created) logger?.info({ file: local.file }, 'generated an admin token for /admin');
    adminToken = local.value;
  }
  return { secretBox: new SecretBox(key!), adminToken };
}

export interface RunningHub {
  /** The API's base URL, when this process serves the API. */
  url: string | undefined;
  port: number | undefined;
  database: Database;
  services: HubServices;
  engine: DeliveryEngine | undefined;
  /** Stops taking requests and jobs, lets in-flight ones finish, closes the database. */
  close(): Promise<void>;
}

export interface Roles {
  api: boolean;
  worker: boolean;
}

/**
 * Opens the database (migrating it), checks the key, and runs the roles:
 * the partner API, the delivery worker, or both in one process (the
 * embedded default).
 */
export async function startHub(config: Config, logger: Logger, roles: Roles): Promise<RunningHub> {
  const secrets = resolveSecrets(config, logger);
  const database = await openDatabase(config);
  let engine: DeliveryEngine | undefined;
  try {
    await verifyEncryptionKey(database.prisma, secrets.secretBox);
    if (!database.embedded) await warnIfNotAnalyzed(database, logger);
    if (roles.worker) {
      engine = await DeliveryEngine.start({
        prisma: database.prisma,
        secretBox: secrets.secretBox,
        databaseUrl: database.url,
        embedded: database.embedded,
        redisUrl: config.redisUrl,
        defaults: config.delivery,
        logger,
      });
    }
  } catch (error) {
    await engine?.stop();
    await database.close();
    throw error;
  }
  // Replays go straight to the queues: through the engine here, or a queue client of this process.
  const requeuer = engine
    ? undefined
    : lazyRequeue({ prisma: database.prisma, secretBox: secrets.secretBox, databaseUrl: database.url, embedded: database.embedded, redisUrl: config.redisUrl, defaults: config.delivery, logger });
  const services = createHubServices({
    prisma: database.prisma,
    store: database.store,
    cacheTtlMs: config.cacheTtlMs,
    onChange: engine ? () => engine.wake() : undefined,
    requeue: engine ? (ids) => engine.relay.requeue(ids) : (ids) => requeuer!.requeue(ids),
  });
  if (!roles.api) {
    return {
      url: undefined,
      port: undefined,
      database,
      services,
      engine,
      async close() {
        await engine?.stop();
        await requeuer?.close();
        await database.close();
      },
    };
  }
  if (!secrets.adminToken) logger.warn('CONNECTOR_ADMIN_TOKEN is not set: the /admin API answers 401 to everyone');
  let draining = false;
  const app = createApp({
    services,
    logger,
    bodyLimitBytes: config.bodyLimitBytes,
    adminToken: secrets.adminToken,
    isReady: async () => {
      await database.prisma.$queryRaw`SELECT 1`;
      return true;
    },
    isDraining: () => draining,
  });
  const server = appServer(app);
  // Partners keep connections alive; the keep-alive timeout must outlast typical load balancers.
  server.keepAliveTimeout = 65_000;
  // Requests still being answered: shutdown waits for them before it closes the database. A
  // request counts until its handler writes the answer, not until its socket closes: a client
  // that gives up mid-request leaves a save running, and that save must still reach the database.
  let inFlight = 0;
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    inFlight += 1;
    if (draining) res.setHeader('Connection', 'close');
    const end = res.end;
    res.end = function (this: http.ServerResponse, ...args: unknown[]) {
      res.end = end;
      inFlight -= 1;
      return (end as (...a: unknown[]) => http.ServerResponse).apply(this, args);
    } as typeof res.end;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address() as { port: number };
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  logger.info({ port: address.port, database: database.embedded ? 'embedded PGlite' : 'PostgreSQL' }, 'Connector API listening');
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    database,
    services,
    engine,
    async close() {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Keep-alive clients may still be sending: answer what is in flight (new requests get
      // UNAVAILABLE and Connection: close), then stop, at most 30 s after the signal.
      const deadline = Date.now() + 30_000;
      while (inFlight > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        server.closeIdleConnections();
      }
      server.closeAllConnections();
      await closed;
      await engine?.stop();
      await requeuer?.close();
      await database.close();
    },
  };
}

/**
 * The saves and deliveries keep to their indexes whatever the statistics
 * say (KEYED_PLANS); every other query relies on PostgreSQL analyzing the
 * tables as they grow, which its autovacuum does.
 */
async function warnIfNotAnalyzed(database: Database, logger: Logger): Promise<void> {
  const [{ autovacuum }] = await database.prisma.$queryRaw<{ autovacuum: string }[]>`SELECT current_setting('autovacuum') AS autovacuum`;
  if (autovacuum === 'off') {
    logger.warn('PostgreSQL autovacuum is off: table statistics go stale as the hub grows; turn it on, or run ANALYZE regularly');
  }
}
