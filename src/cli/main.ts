import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Config } from '../config.ts';
import { createLogger } from '../log.ts';
import { resolveSecrets, startHub, type Roles } from '../hub.ts';
import { ErrorLog } from '../services/error-log.ts';
import { EncryptionKeyMismatch, verifyEncryptionKey } from '../services/key-check.ts';
import { applyMigrations } from '../store/migrations.ts';
import { startEmbeddedPostgres } from '../store/embedded-postgres.ts';
import { applyTurnup, formatTurnupReport } from '../turnup/apply-turnup.ts';
import { loadTurnupFile, TurnupError } from '../turnup/load-turnup.ts';
import { serveApiCluster } from './api-cluster.ts';
import { openCliDatabase } from './cli-database.ts';
import { lazyRequeue } from '../delivery/requeue.ts';
import { HubError } from '../errors/hub-error.ts';
import { DeliveryAdmin } from '../services/delivery-admin.ts';
import { RedisPolicyError } from '../delivery/queue-backend.ts';

const USAGE = `Usage: connector <command>

  start                      the partner API and the delivery worker in one process (embedded PGlite unless DATABASE_URL is set)
  api                        the partner API only (production: scale separately from workers; CONNECTOR_API_PROCESSES per core)
  worker                     the delivery worker only: outbox relay, partner deliveries, reconciliation
  migrate                    apply database migrations and exit
  turnup apply <file>        apply a turn-up file (YAML or JSON); --dry-run shows the changes only
  turnup validate <file>     check a turn-up file without touching the database
  errors show <errorUUID>    what support needs to know about one error
  errors list                recent errors; --provider CODE, --reason REASON, --limit N
  record <uuid>              a record with its links and delivery history
  deliveries list            deliveries; --status DEAD|PENDING|DELIVERED|SKIPPED, --provider CODE, --limit N
  deliveries replay <id>     send a dead delivery again (after the partner or turn-up is fixed)
  token                      print a new random API token for a turn-up file

Configuration comes from the environment; see README.md.`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'dry-run': { type: 'boolean' },
      provider: { type: 'string' },
      reason: { type: 'string' },
      limit: { type: 'string' },
      status: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, sub, arg] = positionals;
  if (!command || values.help) {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  if (command === 'token') {
    console.log(randomBytes(24).toString('hex'));
    return 0;
  }
  const config = loadConfig();
  switch (command) {
    case 'start':
      return serve(config, { api: true, worker: true });
    case 'api':
      if (config.apiProcesses > 1 && cluster.isPrimary) return serveApiCluster(config.apiProcesses, createLogger(config.logLevel));
      return serve(config, { api: true, worker: false });
    case 'worker':
      return serve(config, { api: false, worker: true });
    case 'migrate':
      return migrate(config);
    case 'turnup':
      if (sub === 'validate' && arg) {
        const file = await loadTurnupFile(arg, process.env);
        console.log(`${arg}: valid (${file.providers.length} providers, ${file.clients.length} clients)`);
        return 0;
      }
      if (sub === 'apply' && arg) return turnup(config, arg, values['dry-run'] ?? false);
      throw new UsageError('usage: connector turnup apply|validate <file> [--dry-run]');
    case 'errors':
      if (sub === 'show' && arg) return showError(config, arg);
      if (sub === 'list') return listErrors(config, values);
      throw new UsageError('usage: connector errors show <errorUUID> | errors list [--provider CODE] [--reason REASON] [--limit N]');
    case 'record':
      if (sub) return withAdmin(config, async (admin) => console.log(JSON.stringify(await admin.record(sub), null, 2)));
      throw new UsageError('usage: connector record <uuid>');
    case 'deliveries':
      if (sub === 'list') {
        return withAdmin(config, async (admin) => {
          const rows = await admin.list({ status: values.status, provider: values.provider, limit: values.limit ? Number(values.limit) : 20 });
          for (const d of rows) console.log(`${d.updatedAt}  ${d.id}  ${d.status.padEnd(9)} ${d.provider.padEnd(14)} v${d.deliveredVersion}/${d.wantedVersion}  ${d.lastError ?? ''}`);
          if (rows.length === 0) console.log('no deliveries');
        });
      }
      if (sub === 'replay' && arg) {
        return withAdmin(config, async (admin) => {
          const replayed = await admin.replay(arg);
          console.log(`replaying delivery ${replayed.id} to ${replayed.provider} (version ${replayed.wantedVersion})`);
        });
      }
      throw new UsageError('usage: connector deliveries list [--status S] [--provider P] | deliveries replay <id>');
    default:
      throw new UsageError(`unknown command: ${command}\n\n${USAGE}`);
  }
}

async function serve(config: Config, roles: Roles): Promise<number> {
  const logger = createLogger(config.logLevel);
  const hub = await startHub(config, logger, roles);
  if (hub.database.embedded) {
    logger.info({ dataDir: config.dataDir }, 'embedded database; admin token in data folder file admin.token');
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down: finishing in-flight requests and deliveries');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await hub.close();
  logger.info('stopped');
  return 0;
}

/** Runs a support command with the delivery views; HubErrors (not found, not dead) print as one line. */
async function withAdmin(config: Config, run: (admin: DeliveryAdmin) => Promise<void>): Promise<number> {
  const { secretBox } = resolveSecrets(config);
  const db = await openCliDatabase(config);
  // A replay decrypts the connection: a wrong key must stop here, not dead-letter the delivery again.
  await verifyEncryptionKey(db.prisma, secretBox).catch(async (error) => {
    await db.close();
    throw error;
  });
  const requeuer = lazyRequeue({
    prisma: db.prisma, secretBox, databaseUrl: db.url, embedded: !config.databaseUrl, redisUrl: config.redisUrl, defaults: config.delivery, logger: createLogger('warn'),
  });
  try {
    await run(new DeliveryAdmin(db.prisma, (ids) => requeuer.requeue(ids)));
    return 0;
  } catch (error) {
    if (error instanceof HubError) {
      console.error(error.message);
      return 1;
    }
    throw error;
  } finally {
    await requeuer.close();
    await db.close();
  }
}

async function migrate(config: Config): Promise<number> {
  if (config.databaseUrl) {
    const applied = await applyMigrations(config.databaseUrl);
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
    return 0;
  }
  const embedded = await startEmbeddedPostgres(config.dataDir);
  try {
    const applied = await applyMigrations(embedded.url);
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
  } finally {
    await embedded.stop();
  }
  return 0;
}

async function turnup(config: Config, path: string, dryRun: boolean): Promise<number> {
  const file = await loadTurnupFile(path, process.env);
  const { secretBox } = resolveSecrets(config);
  const db = await openCliDatabase(config);
  try {
    await verifyEncryptionKey(db.prisma, secretBox);
    const report = await applyTurnup({ prisma: db.prisma, secretBox }, file, { dryRun });
    console.log(formatTurnupReport(report));
    if (dryRun) console.log('dry run: nothing was written');
  } finally {
    await db.close();
  }
  return 0;
}

async function showError(config: Config, errorUUID: string): Promise<number> {
  const db = await openCliDatabase(config);
  try {
    const found = await new ErrorLog(db.prisma).find(errorUUID);
    if (!found) {
      console.error(`No error with errorUUID ${errorUUID}`);
      return 1;
    }
    console.log(JSON.stringify(found, null, 2));
    return 0;
  } finally {
    await db.close();
  }
}

async function listErrors(config: Config, options: { provider?: string; reason?: string; limit?: string }): Promise<number> {
  const db = await openCliDatabase(config);
  try {
    const rows = await new ErrorLog(db.prisma).recent({ provider: options.provider, reason: options.reason, limit: options.limit ? Number(options.limit) : 20 });
    for (const e of rows) console.log(`${e.time}  ${e.errorUUID}  ${e.httpStatus} ${e.reason.padEnd(14)} ${(e.provider ?? '-').padEnd(12)} ${e.method} ${e.route}  ${e.message}`);
    if (rows.length === 0) console.log('no errors');
    return 0;
  } finally {
    await db.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    // Operator mistakes get their message alone; anything else its stack too.
    if (
      error instanceof ConfigError ||
      error instanceof TurnupError ||
      error instanceof UsageError ||
      error instanceof EncryptionKeyMismatch ||
      error instanceof RedisPolicyError
    ) {
      console.error(error.message);
      process.exit(2);
    }
    console.error(error);
    process.exit(1);
  },
);
