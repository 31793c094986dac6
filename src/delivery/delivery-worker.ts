import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { PartnerError, type AdapterContext } from '../../adapters/contract.ts';
import type { Logger } from '../log.ts';
import type { PrismaClient } from '../store/generated/client.ts';
import { eventIdOf } from '../store/outbox.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import type { ConnectionRegistry, ReceivingConnection } from './connections.ts';
import type { DeliveryJob } from './delivery-queues.ts';
import type { ContextFactory, DeliveryOutcome, RecordDelivery } from './deliver-record.ts';
import { SignedPartnerHttp } from './partner-http.ts';

interface Lease {
  createAttemptedAt: Date | null;
  entityType: string;
  entityId: string;
  wantedVersion: number;
  deliveredVersion: number;
  status: string;
}

const MAX_BACKOFF_MS = 5 * 60_000;

/** Exponential backoff with jitter (half to full delay), so retries of many records do not arrive in step. */
export function jitteredBackoff(attemptsMade: number, baseMs: number): number {
  const delay = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(delay * (0.5 + Math.random() / 2));
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
    private readonly deps: { prisma: PrismaClient; registry: ConnectionRegistry; records: RecordDelivery; logger: Logger },
  ) {}

  /**
   * How long a job holds its record: one delivery makes at most five partner
   * calls (owner lookup, lead-source list and create, create and update),
   * each bounded by the timeout. A crashed worker's record is free again after this.
   */
  get leaseMs(): number {
    return this.conn.settings.timeoutMs * 5 + 5_000;
  }

  process = async (job: Job<DeliveryJob>, token?: string): Promise<string> => {
    const { prisma, records, logger } = this.deps;
    const conn = (await this.deps.registry.byId(this.conn.providerClientId)) ?? this.conn;
    const wait = this.breaker.waitMs();
    if (wait > 0) {
      // The partner is failing: hold the whole queue instead of burning attempts.
      await this.worker.rateLimit(wait);
      throw Worker.RateLimitError();
    }
    const lease = await this.acquireLease(job.data.deliveryId, job.id!);
    if (!lease) {
      // Another job of the same record is in flight: per-record order means wait for it.
      await job.moveToDelayed(Date.now() + 250 + Math.random() * 250, token);
      throw new DelayedError();
    }
    if (lease.status !== 'PENDING' || lease.deliveredVersion >= lease.wantedVersion) {
      await this.releaseLease(job.data.deliveryId, job.id!);
      return 'up to date';
    }
    const started = new Date();
    const clients: SignedPartnerHttp[] = [];
    const context: ContextFactory = (_purpose, id, version): AdapterContext => {
      const http = new SignedPartnerHttp(conn.connection, eventIdOf(id, version), conn.settings.timeoutMs);
      clients.push(http);
      return { connection: { url: conn.connection.url, options: conn.connection.options }, http };
    };
    const callsOf = () => clients.flatMap((c) => c.calls);
    try {
      const outcome = await records.deliver(lease.entityType, lease.entityId, conn, context, { id: job.data.deliveryId, createAttempted: lease.createAttemptedAt !== null });
      this.breaker.success();
      await this.finish(job.data.deliveryId, job.id!, outcome, { started, calls: callsOf(), key: eventIdOf(lease.entityId, outcome.version) });
      return outcome.note;
    } catch (error) {
      const failure = error instanceof PartnerError ? error : new PartnerError((error as Error).message, { retryable: true, cause: error });
      const version = (await records.versionOf(lease.entityType, lease.entityId)) ?? lease.wantedVersion;
      const attempt = { started, calls: callsOf(), version, key: eventIdOf(lease.entityId, version), error: failure.message };
      if (!failure.retryable) {
        await this.fail(job.data.deliveryId, job.id!, 'DEAD', attempt);
        throw new UnrecoverableError(failure.message);
      }
      if (failure.status === 429) {
        await this.fail(job.data.deliveryId, job.id!, 'RATE_LIMITED', attempt);
        await this.worker.rateLimit((failure.retryAfter ?? 1) * 1000);
        throw Worker.RateLimitError();
      }
      this.breaker.failure();
      const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      await this.fail(job.data.deliveryId, job.id!, last ? 'DEAD' : 'RETRY', last ? { ...attempt, error: `gave up after ${job.attemptsMade + 1} attempts: ${failure.message}` } : attempt);
      logger.warn({ deliveryId: job.data.deliveryId, provider: conn.providerCode, attempt: job.attemptsMade + 1, err: failure.message }, 'delivery failed');
      if (last) throw new UnrecoverableError(failure.message);
      throw failure;
    }
  };

  private async acquireLease(deliveryId: string, token: string): Promise<Lease | undefined> {
    const rows = await this.deps.prisma.$queryRaw<Lease[]>`
      UPDATE delivery SET "leaseToken" = ${token}, "leaseUntil" = now() + make_interval(secs => ${this.leaseMs / 1000})
      WHERE id = ${deliveryId}::uuid AND ("leaseUntil" IS NULL OR "leaseUntil" < now() OR "leaseToken" = ${token})
      RETURNING "createAttemptedAt", "entityType"::text AS "entityType", "entityId"::text AS "entityId", "wantedVersion", "deliveredVersion", status::text AS status`;
    return rows[0];
  }

  private async releaseLease(deliveryId: string, token: string): Promise<void> {
    await this.deps.prisma.$executeRaw`
      UPDATE delivery SET "leaseToken" = NULL, "leaseUntil" = NULL WHERE id = ${deliveryId}::uuid AND "leaseToken" = ${token}`;
  }

  private async finish(deliveryId: string, token: string, outcome: DeliveryOutcome, attempt: { started: Date; calls: SignedPartnerHttp['calls']; key: string }): Promise<void> {
    const { started, calls } = attempt;
    const { prisma } = this.deps;
    const note = outcome.outcome === 'SKIPPED' ? outcome.note : null;
    await prisma.$transaction([
      prisma.$executeRaw`
        UPDATE delivery SET "deliveredVersion" = GREATEST("deliveredVersion", ${outcome.version}),
          status = CASE WHEN "wantedVersion" > GREATEST("deliveredVersion", ${outcome.version}) THEN 'PENDING'::"DeliveryStatus"
                        ELSE ${outcome.outcome}::"DeliveryStatus" END,
          "lastError" = ${note}, "leaseToken" = NULL, "leaseUntil" = NULL, "updatedAt" = now()
        WHERE id = ${deliveryId}::uuid AND "leaseToken" = ${token}`,
      prisma.deliveryAttempt.create({
        data: {
          id: crypto.randomUUID(),
          deliveryId,
          version: outcome.version,
          idempotencyKey: attempt.key,
          startedAt: started,
          durationMs: Date.now() - started.getTime(),
          outcome: outcome.outcome,
          calls: formatCalls(calls, outcome.note),
          httpStatus: calls.at(-1)?.status ?? null,
        },
      }),
    ]);
  }

  private async fail(
    deliveryId: string,
    token: string,
    outcome: 'DEAD' | 'RETRY' | 'RATE_LIMITED',
    attempt: { started: Date; calls: SignedPartnerHttp['calls']; version: number; key: string; error: string },
  ): Promise<void> {
    const { prisma } = this.deps;
    await prisma.$transaction([
      outcome === 'DEAD'
        ? prisma.$executeRaw`UPDATE delivery SET status = 'DEAD', "lastError" = ${attempt.error}, "leaseToken" = NULL, "leaseUntil" = NULL, "updatedAt" = now()
            WHERE id = ${deliveryId}::uuid AND "leaseToken" = ${token}`
        : prisma.$executeRaw`UPDATE delivery SET "lastError" = ${attempt.error}, "leaseToken" = NULL, "leaseUntil" = NULL
            WHERE id = ${deliveryId}::uuid AND "leaseToken" = ${token}`,
      prisma.deliveryAttempt.create({
        data: {
          id: crypto.randomUUID(),
          deliveryId,
          version: attempt.version,
          idempotencyKey: attempt.key,
          startedAt: attempt.started,
          durationMs: Date.now() - attempt.started.getTime(),
          outcome,
          calls: formatCalls(attempt.calls),
          httpStatus: attempt.calls.at(-1)?.status ?? null,
          error: attempt.error.slice(0, 2000),
        },
      }),
    ]);
  }
}

function formatCalls(calls: SignedPartnerHttp['calls'], note?: string): string {
  const list = calls.map((c) => `${c.operation} ${c.status ?? 'no answer'} ${c.durationMs}ms`).join(', ');
  return [list, note].filter(Boolean).join(' — ').slice(0, 2000) || 'no partner call';
}
