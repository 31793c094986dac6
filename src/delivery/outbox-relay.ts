import type { JobType } from 'bullmq';
import type { Logger } from '../log.ts';
import { Prisma, type PrismaClient } from '../store/generated/client.ts';
import { wantsChange } from '../domain/fan-out.ts';
import type { ConnectionRegistry, ReceivingConnection } from './connections.ts';
import { bundleSize, newBundleId, type DeliveryQueues } from './delivery-queues.ts';
import type { DeliveryStore, WantedDelivery } from './delivery-store.ts';

/**
 * The states of a job still to run. 'paused' is not in BullMQ's JobType, but
 * its PostgreSQL backend reports a paused queue's waiting jobs under it.
 */
const QUEUED = ['waiting', 'active', 'delayed', 'prioritized', 'paused'] as JobType[];

interface PendingRow {
  id: string;
  entityType: string;
  providerClientId: string;
  jobId: string | null;
}

export interface OutboxRelayOptions {
  /** How often the relay looks for events when nothing wakes it. */
  intervalMs: number;
  batchSize?: number;
  clientIds?: string[];
  /**
   * The least time from the end of one relay run to the start of the next
   * when woken (0: at once). On a database of one shared session (the
   * embedded PGlite) the relay's transaction holds the session every save
   * uses, for several round trips: fewer, larger runs cost the saves less.
   */
  spacingMs?: number;
  /**
   * Vacuum the tables the relay and the reconciler walk by index after
   * this many events relayed (undefined: never; a server's autovacuum
   * does it). On a database without autovacuum (the embedded PGlite)
   * their indexes keep an entry for every row version ever written: the
   * index of unrelayed events one for every event ever relayed (which
   * `serialized` keeps the relay's read from walking), the deliveries'
   * status indexes one for every delivery made. A vacuum holds PGlite's
   * one session for a time that grows with the row versions it clears
   * (see the engine's VACUUM_EVERY_EVENTS).
   */
  vacuumEvery?: number;
  /**
   * The database runs one transaction at a time (the embedded PGlite: one
   * session every connection shares, each transaction kept together), so
   * events commit in the order of their seq, and once the relay has
   * relayed up to one, no event before it can still appear. Each read then
   * starts after the last event relayed, by the index, instead of walking
   * from the index's start past every entry of an event relayed since the
   * last vacuum (on PGlite, 5.7 ms a read after 100,000 events, 0.57 ms
   * after a VACUUM). Never on a server of concurrent sessions: a save that
   * took its seq before the last relayed event's may commit after it.
   */
  serialized?: boolean;
}

/**
 * Turns committed change events into deliveries (one row per record and
 * receiving connection, carrying the newest version wanted) and hands them
 * to the connection's queue. Events are marked relayed in the same
 * transaction as the delivery rows; a crash before the queue add is healed
 * by `reconcile`, which re-adds every pending delivery (job IDs make that
 * idempotent).
 */
export class OutboxRelay {
  private timer: NodeJS.Timeout | undefined;
  private spaced: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private lastEnded = 0;
  private again = false;
  private stopped = false;
  private relayedSinceVacuum = 0;
  /** With `serialized`: the seq of the last event this relay relayed (its next read starts after it). */
  private relayedUpTo: string | undefined;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly store: DeliveryStore,
    private readonly connections: ConnectionRegistry,
    private readonly queues: DeliveryQueues,
    private readonly logger: Logger,
    private readonly options: OutboxRelayOptions,
  ) {}

  start(): void {
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.wake();
      this.timer = setTimeout(tick, this.options.intervalMs);
    };
    tick();
  }

  /** The least time between the end of a run and the start of one woken by a save (OutboxRelayOptions.spacingMs). */
  get spacingMs(): number {
    return this.options.spacingMs ?? 0;
  }

  /** Events relayed between vacuums (OutboxRelayOptions.vacuumEvery); undefined: the relay never vacuums. */
  get vacuumEvery(): number | undefined {
    return this.options.vacuumEvery;
  }

  /** Whether each read starts after the last event relayed (OutboxRelayOptions.serialized). */
  get serialized(): boolean {
    return this.options.serialized ?? false;
  }

  /** Relays now, or once `spacingMs` after the last run (called by the API in the same process after a save). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    const wait = this.lastEnded + this.spacingMs - Date.now();
    if (wait > 0) {
      this.spaced ??= setTimeout(() => {
        this.spaced = undefined;
        this.wake();
      }, wait);
      return;
    }
    this.running = this.drain()
      .then(() => undefined)
      .catch((error) => this.logger.error({ err: error }, 'outbox relay failed; retrying on the next tick'))
      .finally(() => {
        this.running = undefined;
        this.lastEnded = Date.now();
        if (this.again && !this.stopped) {
          this.again = false;
          this.wake();
        }
      });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.spaced);
    await this.running;
  }

  /**
   * Relays until a batch is not full: every event committed before the run
   * started is relayed. (A last batch that finds nothing would cost one
   * more transaction per run; later events wake the relay again.)
   */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const count = await this.relayBatch();
      total += count;
      if (count < this.batchSize) break;
    }
    await this.vacuumIfDue(total);
    return total;
  }

  private async vacuumIfDue(relayed: number): Promise<void> {
    const every = this.options.vacuumEvery;
    if (every === undefined) return;
    this.relayedSinceVacuum += relayed;
    if (this.relayedSinceVacuum < every) return;
    this.relayedSinceVacuum = 0;
    // The events are relayed: a failed vacuum is tried again after the next `vacuumEvery`.
    await this.vacuum();
  }

  private async vacuum(): Promise<void> {
    try {
      const started = performance.now();
      await this.store.vacuum();
      this.logger.debug({ ms: Math.round(performance.now() - started) }, 'vacuumed the outbox and deliveries');
    } catch (error) {
      this.logger.warn({ err: error }, 'vacuum of the outbox and deliveries failed');
    }
  }

  /**
   * Deletes the change events (of the relay's clients) relayed more than
   * `retentionMs` ago: the deliveries they made carry on without them. On a
   * database the relay vacuums (`vacuumEvery`), a prune that deleted any
   * vacuums too. An aborted `signal` ends it after the batch in hand.
   * Returns how many were deleted.
   */
  async prune(retentionMs: number, signal?: AbortSignal): Promise<number> {
    const deleted = await this.store.pruneRelayed(retentionMs, { clientIds: this.options.clientIds, signal });
    // Not while stopping: a vacuum would hold up the shutdown; the relay's next one (vacuumEvery) reclaims them.
    if (deleted > 0 && this.options.vacuumEvery !== undefined && !signal?.aborted) await this.vacuum();
    return deleted;
  }

  private get batchSize(): number {
    return this.options.batchSize ?? 500;
  }

  async relayBatch(): Promise<number> {
    // Read the connections before the transaction: a registry reload inside it would wait on
    // another pooled connection, which the embedded PGlite (one shared session) only serves
    // once this transaction ends.
    const receivers = await this.connections.all();
    const after = this.options.serialized ? this.relayedUpTo : undefined;
    const { events, deliveries, lastSeq } = await this.store.relayEvents(this.batchSize, this.options.clientIds, (events) => {
      // Newest wanted version per (record, connection): a batch may hold several versions of one record.
      const wanted = new Map<string, WantedDelivery>();
      for (const event of events) {
        for (const target of receivers.filter((r) => r.clientId === event.clientId)) {
          const change = { entityType: event.entityType, originProviderId: event.originProviderId, userType: event.userType ?? undefined };
          if (!wantsChange({ providerId: target.providerId, agreement: target.agreement, capabilities: target.adapter.capabilities }, change)) continue;
          const key = `${event.entityId}/${target.providerClientId}`;
          const before = wanted.get(key);
          if (!before || before.version < event.version) {
            wanted.set(key, { ...event, providerClientId: target.providerClientId, providerId: target.providerId, jobId: null });
          }
        }
      }
      return bundled([...wanted.values()], receivers);
    }, after);
    // Committed: the next read starts after these (only now: a run that failed relayed nothing).
    if (this.options.serialized && lastSeq !== undefined) this.relayedUpTo = lastSeq;
    const pending = deliveries.filter((d) => d.status === 'PENDING');
    if (pending.length) await this.enqueue(pending);
    // A delivery that already existed may have its job running right now, and adding a job
    // with a running job's ID does nothing; that job sends newer versions it sees when it
    // finishes, and this second add, after the job has had time to end, covers the rest.
    const existing = pending.filter((p) => p.existed);
    if (existing.length) {
      const timer = setTimeout(() => void this.requeue(existing.map((p) => p.id)).catch((err) => this.logger.error({ err }, 'requeue failed')), 1_000);
      timer.unref();
    }
    return events;
  }

  /**
   * Re-adds every pending delivery whose last change is older than
   * `olderThanMs` (a lost queue add, a Redis restart that lost its jobs).
   * Job IDs make this safe to run at any time.
   */
  async reconcile(olderThanMs: number): Promise<number> {
    // Only connections whose queue holds fewer jobs than they have pending deliveries lost
    // something; a long but intact backlog is left alone instead of being re-added every time.
    const candidates = await this.prisma.$queryRaw<{ providerClientId: string }[]>`
      SELECT DISTINCT "providerClientId"::text AS "providerClientId"
      FROM delivery WHERE status = 'PENDING' ${this.clientFilter('"clientId"')}`;
    // A relay batch between its commit and its queue add has pending deliveries without jobs.
    await this.running;
    let total = 0;
    for (const { providerClientId } of candidates) {
      if (!(await this.lostJobs(providerClientId))) continue;
      const pending = await this.prisma.$queryRaw<PendingRow[]>`
        SELECT id::text AS id, "entityType"::text AS "entityType", "providerClientId"::text AS "providerClientId", "jobId"
        FROM delivery WHERE status = 'PENDING' AND "providerClientId" = ${providerClientId}::uuid
          AND "updatedAt" < now() - make_interval(secs => ${olderThanMs / 1000})`;
      if (pending.length) await this.enqueue(pending);
      total += pending.length;
    }
    return total;
  }

  /**
   * Whether the connection's queue holds fewer jobs than its pending
   * deliveries have (one per bundle or delivery of its own). Jobs are counted
   * first: a delivery that finishes meanwhile leaves PENDING before its job
   * leaves the queue, so the two counts only disagree this way when jobs were
   * lost, or in the moment between a bundle's hand-over of a delivery and the
   * add of its own job (the rows re-added then are newer than a reconcile's
   * age, or their jobs are there and the adds do nothing). (The other order saw every
   * delivery finishing between the two reads as a lost job, and re-added a
   * whole backlog on every reconcile.) A paused queue's jobs are not lost
   * either: Redis counts them as waiting, BullMQ's PostgreSQL backend as paused.
   */
  private async lostJobs(providerClientId: string): Promise<boolean> {
    const jobs = await this.queues.queue(providerClientId).getJobCounts(...QUEUED);
    const [{ pending }] = await this.prisma.$queryRaw<{ pending: number }[]>`
      SELECT count(DISTINCT COALESCE("jobId", id::text))::int AS pending
      FROM delivery WHERE status = 'PENDING' AND "providerClientId" = ${providerClientId}::uuid`;
    return Object.values(jobs).reduce((a, b) => a + b, 0) < pending;
  }

  /** Puts these deliveries (if pending) back on their queues now: an operator's replay. */
  async requeue(deliveryIds: string[]): Promise<void> {
    const pending = await this.prisma.$queryRaw<PendingRow[]>`
      SELECT id::text AS id, "entityType"::text AS "entityType", "providerClientId"::text AS "providerClientId", "jobId"
      FROM delivery WHERE status = 'PENDING' AND id = ANY(${deliveryIds}::uuid[])`;
    if (pending.length) await this.enqueue(pending);
  }

  private clientFilter(column: string): Prisma.Sql {
    return this.options.clientIds ? Prisma.sql`AND ${Prisma.raw(column)} = ANY(${this.options.clientIds}::uuid[])` : Prisma.empty;
  }

  private async enqueue(pending: PendingRow[]): Promise<void> {
    const jobs = [];
    for (const p of pending) {
      const connection = await this.connections.byId(p.providerClientId);
      if (connection) {
        jobs.push({ ...p, deliveryId: p.id, attempts: connection.settings.attempts, backoffMs: connection.settings.backoffMs });
        continue;
      }
      // A connection that cannot be built is an operator problem: dead-letter with the reason,
      // to replay after the turn-up is fixed. A removed grant simply ends the delivery.
      const problem = await this.connections.problemOf(p.providerClientId);
      await this.prisma.delivery.update({
        where: { id: p.id },
        data: problem ? { status: 'DEAD', lastError: problem } : { status: 'SKIPPED', lastError: 'the receiving connection no longer exists' },
      });
    }
    await this.queues.enqueue(jobs);
  }
}

/**
 * Chooses each wanted delivery's job: the deliveries of one connection in
 * bundles of `bundleSize` (none, when that is one), in the order
 * their events came. The write keeps the job of a delivery that is already
 * pending.
 */
function bundled(wanted: WantedDelivery[], receivers: ReceivingConnection[]): WantedDelivery[] {
  const byConnection = new Map<string, WantedDelivery[]>();
  for (const w of wanted) {
    const list = byConnection.get(w.providerClientId);
    if (list) list.push(w);
    else byConnection.set(w.providerClientId, [w]);
  }
  for (const [providerClientId, list] of byConnection) {
    const receiver = receivers.find((r) => r.providerClientId === providerClientId);
    const size = receiver ? bundleSize(list.length, receiver.settings) : 1;
    if (size === 1) continue;
    for (let start = 0; start < list.length; start += size) {
      const jobId = newBundleId();
      for (const w of list.slice(start, start + size)) w.jobId = jobId;
    }
  }
  return wanted;
}
