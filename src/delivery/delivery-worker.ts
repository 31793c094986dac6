import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { PartnerError, type AdapterContext } from '../../adapters/contract.ts';
import type { Logger } from '../log.ts';
import { eventIdOf } from '../store/outbox.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import type { ConnectionRegistry, ReceivingConnection } from './connections.ts';
import { deliveriesOf, type DeliveryJob, type DeliveryQueues } from './delivery-queues.ts';
import type { ContextFactory, RecordDelivery } from './deliver-record.ts';
import type { ClaimedDelivery, DeliveryStore } from './delivery-store.ts';
import { partnerAgent, SignedPartnerHttp, type PartnerAgent } from './partner-http.ts';

const MAX_BACKOFF_MS = 5 * 60_000;

/** Exponential backoff with jitter (half to full delay), so retries of many records do not arrive in step. */
export function jitteredBackoff(attemptsMade: number, baseMs: number): number {
  const delay = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(delay * (0.5 + Math.random() / 2));
}

/**
 * A connection's BullMQ backoff strategy: jitteredBackoff, going on from the
 * attempts a bundle made before it handed the delivery to this job
 * (DeliveryJob.attemptsBefore), as if the job had made them.
 */
export function deliveryBackoff(baseMs: number) {
  return (attemptsMade: number, _type?: string, _err?: Error, job?: { data: DeliveryJob }): number =>
    jitteredBackoff(attemptsMade + (job?.data.attemptsBefore ?? 0), baseMs);
}

/**
 * Processes one connection's deliveries: takes the record's lease (one job
 * per record in flight), delivers its latest version, writes the attempt to
 * the history, and maps partner failures to BullMQ's signals in this one
 * place: UnrecoverableError (dead-letter now), RateLimitError (wait as told,
 * no attempt used), a thrown error (retry with backoff).
 */
export class ConnectionWorker {
  readonly breaker = new CircuitBreaker();
  worker!: Worker;

  constructor(
    private readonly conn: ReceivingConnection,
    private readonly deps: { store: DeliveryStore; registry: ConnectionRegistry; queues: DeliveryQueues; records: RecordDelivery; logger: Logger },
  ) {
    this.agent = partnerAgent(conn);
  }

  /** Keep-alive connections to this partner, as many as jobs run at once. */
  private readonly agent: PartnerAgent;

  async close(): Promise<void> {
    await this.worker.close();
    this.agent.destroy();
  }

  /**
   * How long BullMQ's lock on a job lasts without renewal: one delivery makes
   * at most five partner calls (owner lookup, lead-source list and create,
   * create and update), each bounded by the timeout. A crashed worker's job
   * runs again after this.
   */
  get lockMs(): number {
    return this.conn.settings.timeoutMs * 5 + 5_000;
  }

  process = async (job: Job<DeliveryJob>): Promise<string> => {
    const conn = (await this.deps.registry.byId(this.conn.providerClientId)) ?? this.conn;
    const deliveries = deliveriesOf(job.data);
    const bundle = job.data.deliveryIds !== undefined;
    let note = 'nothing to deliver';
    for (const deliveryId of deliveries) {
      const wait = this.breaker.waitMs();
      if (wait > 0) {
        // The partner is failing: hold the whole queue instead of burning attempts. A bundle runs
        // again afterwards; the deliveries it finished are then up to date.
        await this.worker.rateLimit(wait);
        throw Worker.RateLimitError();
      }
      note = await this.deliver(job, deliveryId, conn, bundle);
    }
    return bundle ? `${deliveries.length} deliveries` : note;
  };

  /** One delivery of the job: its latest version, and any newer one wanted meanwhile (up to five rounds). */
  private async deliver(job: Job<DeliveryJob>, deliveryId: string, conn: ReceivingConnection, bundle: boolean): Promise<string> {
    for (let round = 1; ; round++) {
      const claimed = await this.deps.store.claim(deliveryId, job.id!);
      if (claimed && !claimed.owned) return 'delivered by another job';
      if (!claimed || claimed.status !== 'PENDING' || claimed.deliveredVersion >= claimed.wantedVersion) return 'up to date';
      // A job of one delivery restarted after a crash (attemptsStarted > 1) may have created the
      // record already. (A bundle's deliveries rely on the claim's mark alone: a restarted bundle
      // had not reached most of them.)
      if (!bundle && job.attemptsStarted > 1) claimed.createAttemptedBefore = true;
      const { stillPending, note } = await this.deliverOnce(job, claimed, conn, bundle);
      if (!stillPending || round >= 5) return note;
    }
  }

  private async deliverOnce(job: Job<DeliveryJob>, claimed: ClaimedDelivery, conn: ReceivingConnection, bundle: boolean): Promise<{ stillPending: boolean; note: string }> {
    const { store, records, logger } = this.deps;
    const startedAt = new Date();
    const clients: SignedPartnerHttp[] = [];
    // The record's key is wanted by its calls and again by the attempt's row: hashed once.
    const keys = new Map<string, string>();
    const keyOf = (id: string, version: number): string => {
      const name = `${id}/${version}`;
      let key = keys.get(name);
      if (key === undefined) keys.set(name, (key = eventIdOf(id, version)));
      return key;
    };
    const context: ContextFactory = (_purpose, id, version): AdapterContext => {
      const http = new SignedPartnerHttp(conn.connection, keyOf(id, version), conn.settings.timeoutMs, this.agent);
      clients.push(http);
      return { connection: { url: conn.connection.url, options: conn.connection.options }, http };
    };
    const calls = () => clients.flatMap((c) => c.calls);
    try {
      const outcome = await records.deliver(claimed, conn, context);
      this.breaker.success();
      const made = calls();
      const { stillPending } = await store.finish(
        claimed,
        {
          version: outcome.version,
          idempotencyKey: keyOf(claimed.entityId, outcome.version),
          startedAt,
          outcome: outcome.outcome,
          calls: formatCalls(made, outcome.note),
          httpStatus: made.at(-1)?.status ?? null,
          error: null,
        },
        outcome.outcome === 'SKIPPED' ? outcome.note : null,
        outcome.newLink,
      );
      return { stillPending, note: outcome.note };
    } catch (error) {
      const failure = error instanceof PartnerError ? error : new PartnerError((error as Error).message, { retryable: true, cause: error });
      const version = (claimed.user?.version as number | undefined) ?? claimed.wantedVersion;
      const made = calls();
      const attempt = {
        version,
        idempotencyKey: keyOf(claimed.entityId, version),
        startedAt,
        calls: formatCalls(made),
        httpStatus: made.at(-1)?.status ?? null,
        error: failure.message,
      };
      // The partner answered (a refusal or a rate limit): it is up, whatever the breaker thought.
      if (!failure.retryable || failure.status === 429) this.breaker.success();
      if (!failure.retryable) {
        await store.fail(claimed, { ...attempt, outcome: 'DEAD' });
        // A bundle goes on with its other deliveries.
        if (bundle) return { stillPending: false, note: failure.message };
        throw new UnrecoverableError(failure.message);
      }
      if (failure.status === 429) {
        await store.fail(claimed, { ...attempt, outcome: 'RATE_LIMITED' });
        await this.worker.rateLimit((failure.retryAfter ?? 1) * 1000);
        throw Worker.RateLimitError();
      }
      this.breaker.failure();
      // A bundle makes one attempt at each of its deliveries: a failed one is handed to a job of
      // its own, which retries it with the attempts the connection has left.
      const attemptNo = bundle ? 1 : (job.data.attemptsBefore ?? 0) + job.attemptsMade + 1;
      const last = bundle ? conn.settings.attempts <= 1 : job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      const handOver = bundle && !last;
      await store.fail(claimed, last ? { ...attempt, outcome: 'DEAD', error: `gave up after ${attemptNo} attempts: ${failure.message}` } : { ...attempt, outcome: 'RETRY' }, handOver);
      logger.warn({ deliveryId: claimed.id, provider: conn.providerCode, attempt: attemptNo, err: failure.message }, 'delivery failed');
      if (handOver) {
        await this.deps.queues.handOver(conn.providerClientId, claimed.id, claimed.entityType, {
          attemptsBefore: attemptNo,
          attemptsLeft: conn.settings.attempts - attemptNo,
          backoffMs: conn.settings.backoffMs,
          delayMs: jitteredBackoff(attemptNo, conn.settings.backoffMs),
        });
      }
      if (bundle) return { stillPending: false, note: failure.message };
      if (last) throw new UnrecoverableError(failure.message);
      throw failure;
    }
  }
}

function formatCalls(calls: SignedPartnerHttp['calls'], note?: string): string {
  const list = calls.map((c) => `${c.operation} ${c.status ?? 'no answer'} ${c.durationMs}ms`).join(', ');
  return [list, note].filter(Boolean).join(' — ').slice(0, 2000) || 'no partner call';
}
