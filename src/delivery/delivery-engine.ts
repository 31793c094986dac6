import type { DeliveryDefaults } from '../config.ts';
import type { Logger } from '../log.ts';
import type { SecretBox } from '../security/secret-box.ts';
import type { PrismaClient } from '../store/generated/client.ts';
import { servesOneSession } from '../store/sql-sessions.ts';
import { ConnectionRegistry } from './connections.ts';
import { DeliveryQueues, queueNameOf } from './delivery-queues.ts';
import { DeliveryStore } from './delivery-store.ts';
import { ConnectionWorker, deliveryBackoff } from './delivery-worker.ts';
import { RecordDelivery } from './deliver-record.ts';
import { OutboxRelay } from './outbox-relay.ts';
import { PartnerSync } from './partner-sync.ts';
import { createQueueBackend, type QueueBackend } from './queue-backend.ts';

/** The limiter of a connection with no agreed rate: no limit in practice. */
const UNLIMITED_PER_SECOND = 1_000_000;

export interface DeliveryEngineOptions {
  prisma: PrismaClient;
  secretBox: SecretBox;
  databaseUrl: string;
  /** The database is the embedded PGlite (no LISTEN/NOTIFY through its socket). */
  embedded?: boolean;
  redisUrl?: string;
  defaults: DeliveryDefaults;
  logger: Logger;
  /** How often worker set and connection settings are re-read. @defaultValue 5000 */
  refreshMs?: number;
  /** How often relayed change events past their retention are deleted (also once at start). @defaultValue 600000 */
  pruneEveryMs?: number;
  /** Only these clients (hub IDs): to split delivery across worker groups, and to keep tests apart. */
  clientIds?: string[];
}

/** The relay's spacing on a database of one shared session (OutboxRelayOptions.spacingMs): deliveries start up to this much later. */
const ONE_SESSION_RELAY_SPACING_MS = 50;

/**
 * Events relayed between vacuums on a database without autovacuum (OutboxRelayOptions.vacuumEvery).
 * A vacuum holds PGlite's one session, every save waiting, for a time that grows with the dead row
 * versions it clears: with 200,000 events kept, ~40 ms after 10,000 events relayed and ~200 ms
 * after 100,000 (a fifth of a second of saves held: the embedded hub's slowest at 1,000 saves/s).
 * Fewer events between vacuums do not shorten the longest hold: below ~2 % of the table's pages
 * PostgreSQL leaves the indexes for a later vacuum, which then scans them whole (~40 ms at that size).
 */
const VACUUM_EVERY_EVENTS = 10_000;

/** DeliveryEngineOptions.pruneEveryMs's default: ten minutes. */
const PRUNE_EVERY_MS = 10 * 60_000;

/**
 * The worker role: the outbox relay, one BullMQ worker per receiving
 * connection, the reconciler that re-adds what a queue lost, and the
 * prune of relayed change events.
 */
export class DeliveryEngine {
  private readonly workers = new Map<string, { worker: ConnectionWorker; signature: string }>();
  private timers: NodeJS.Timeout[] = [];
  private syncing: Promise<void> | undefined;
  private pruning: Promise<number> | undefined;
  private readonly stopping = new AbortController();
  private stopped: Promise<void> | undefined;

  private constructor(
    private readonly options: DeliveryEngineOptions,
    readonly backend: QueueBackend,
    readonly registry: ConnectionRegistry,
    readonly queues: DeliveryQueues,
    readonly relay: OutboxRelay,
    private readonly records: RecordDelivery,
    readonly store: DeliveryStore,
  ) {}

  static async start(options: DeliveryEngineOptions): Promise<DeliveryEngine> {
    const backend = await createQueueBackend({ redisUrl: options.redisUrl, databaseUrl: options.databaseUrl, embedded: options.embedded });
    const registry = new ConnectionRegistry(options.prisma, options.secretBox, options.defaults, options.refreshMs ?? 5_000, options.clientIds);
    const queues = new DeliveryQueues(backend);
    const oneSession = await servesOneSession(options.prisma);
    const store = new DeliveryStore(options.databaseUrl, options.embedded ? 4 : 20, oneSession);
    const relay = new OutboxRelay(options.prisma, store, registry, queues, options.logger, {
      intervalMs: options.defaults.relayIntervalMs,
      clientIds: options.clientIds,
      spacingMs: oneSession ? ONE_SESSION_RELAY_SPACING_MS : 0,
      // The embedded PGlite (the one database of one shared session) runs no autovacuum, and
      // runs one transaction at a time.
      vacuumEvery: oneSession ? VACUUM_EVERY_EVENTS : undefined,
      serialized: oneSession,
    });
    const engine = new DeliveryEngine(options, backend, registry, queues, relay, new RecordDelivery(options.prisma, new PartnerSync(options.prisma)), store);
    await engine.syncWorkers();
    // Whatever was pending when the last process stopped (or crashed) goes back on the queue first.
    await relay.reconcile(0);
    relay.start();
    void engine.pruneEvents();
    engine.timers.push(
      setInterval(() => void engine.syncWorkers(), options.refreshMs ?? 5_000),
      setInterval(() => void engine.pruneEvents(), options.pruneEveryMs ?? PRUNE_EVERY_MS),
      setInterval(
        () => void relay.reconcile(options.defaults.reconcileIntervalMs).catch((err) => options.logger.error({ err }, 'reconcile failed')),
        options.defaults.reconcileIntervalMs,
      ),
    );
    options.logger.info({ queue: backend.kind, connections: engine.workers.size }, 'delivery engine started');
    return engine;
  }

  /** A change was committed in this process: relay it now rather than at the next tick. */
  wake(): void {
    this.relay.wake();
  }

  /**
   * Deletes the change events relayed longer ago than the retention
   * (`defaults.eventRetentionMs`); one prune at a time, none once stopping.
   * Resolves to how many were deleted (0 when it failed, which is logged:
   * the next one retries).
   */
  pruneEvents(): Promise<number> {
    this.pruning ??= this.relay
      .prune(this.options.defaults.eventRetentionMs, this.stopping.signal)
      .then((deleted) => {
        if (deleted > 0) this.options.logger.info({ deleted }, 'deleted relayed change events past their retention');
        return deleted;
      })
      .catch((err) => {
        this.options.logger.error({ err }, 'could not delete relayed change events; retrying at the next prune');
        return 0;
      })
      .finally(() => (this.pruning = undefined));
    return this.pruning;
  }

  /** Starts, restarts (settings changed) or stops connection workers to match the turn-up. */
  syncWorkers(): Promise<void> {
    this.syncing ??= this.doSyncWorkers()
      .catch((err) => this.options.logger.error({ err }, 'could not refresh delivery workers'))
      .finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  private async doSyncWorkers(): Promise<void> {
    const connections = await this.registry.all();
    const seen = new Set<string>();
    for (const conn of connections) {
      seen.add(conn.providerClientId);
      const signature = JSON.stringify(conn.settings);
      const running = this.workers.get(conn.providerClientId);
      if (running?.signature === signature) continue;
      if (running) await running.worker.close();
      const worker = new ConnectionWorker(conn, { store: this.store, registry: this.registry, queues: this.queues, records: this.records, logger: this.options.logger });
      worker.worker = this.backend.createWorker(queueNameOf(conn.providerClientId), worker.process as never, {
        concurrency: conn.settings.concurrency,
        // Always a limiter: BullMQ's fetch honours a manual rate limit (a 429's Retry-After, an open
        // breaker) only for a worker that has one. Without it, a fetch already waiting took the
        // rate-limited job straight back and called the partner again within milliseconds.
        limiter: { max: conn.settings.ratePerSecond ? Math.max(1, Math.round(conn.settings.ratePerSecond)) : UNLIMITED_PER_SECOND, duration: 1000 },
        lockDuration: worker.lockMs,
        // While rate-limited (open breaker, 429) the worker sleeps up to this long with jobs it
        // already fetched; longer than the lock, they lose it and stall (twice: failed for good).
        maximumRateLimitDelay: Math.floor(worker.lockMs / 2),
        // A job a bundle handed a delivery to goes on from the bundle's attempts (DeliveryJob.attemptsBefore).
        settings: { backoffStrategy: deliveryBackoff(conn.settings.backoffMs) },
      });
      worker.worker.on('error', (err) => this.options.logger.error({ err, provider: conn.providerCode }, 'delivery worker error'));
      this.workers.set(conn.providerClientId, { worker, signature });
    }
    for (const [id, running] of this.workers) {
      if (!seen.has(id)) {
        await running.worker.close();
        this.workers.delete(id);
      }
    }
  }

  /** Stops taking jobs, lets in-flight deliveries finish, closes the queues. Once: a second call waits for the first. */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    // A long prune (the first after an upgrade) ends after its batch in hand.
    this.stopping.abort();
    await this.syncing;
    await this.pruning;
    await this.relay.stop();
    await Promise.all([...this.workers.values()].map((w) => w.worker.close()));
    this.workers.clear();
    await this.queues.close();
    await this.backend.close();
    await this.store.close();
  }
}

