import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Config } from './config.ts';
import type { Logger } from './log.ts';
import { createApp } from './api/app.ts';
import { localSecret } from './security/local-secrets.ts';
import { SecretBox, generateKey } from './security/secret-box.ts';
import { createHubServices, type HubServices } from './services/hub-services.ts';
import { verifyEncryptionKey } from './services/key-check.ts';
import { openDatabase, type Database } from './store/database.ts';

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
  if (!adminToken) logger?.warn('CONNECTOR_ADMIN_TOKEN is not set: the /admin API answers 401 to everyone');
  return { secretBox: new SecretBox(key!), adminToken };
}

export interface RunningHub {
  url: string;
  port: number;
  database: Database;
  services: HubServices;
  /** Stops taking requests, lets in-flight ones finish, closes the database. */
  close(): Promise<void>;
}

/** Opens the database (migrating it), checks the key, and serves the API. */
export async function startApi(config: Config, logger: Logger): Promise<RunningHub> {
  const secrets = resolveSecrets(config, logger);
  const database = await openDatabase(config);
  try {
    await verifyEncryptionKey(database.prisma, secrets.secretBox);
  } catch (error) {
    await database.close();
    throw error;
  }
  const services = createHubServices({ prisma: database.prisma, cacheTtlMs: config.cacheTtlMs });
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
  const server = http.createServer(app);
  // Partners keep connections alive; the keep-alive timeout must outlast typical load balancers.
  server.keepAliveTimeout = 65_000;
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
    async close() {
      draining = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await database.close();
    },
  };
}
