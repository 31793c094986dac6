import { randomUUID } from 'node:crypto';
import pg from 'pg';

/**
 * The delivery hot path in plain SQL on its own pool: a delivery costs two
 * round trips to the database (claim, then finish or fail) instead of a
 * dozen ORM calls. Each statement is one atomic step.
 */
export interface ClaimedDelivery {
  id: string;
  entityType: 'USER' | 'STAFF' | 'LEAD_SOURCE';
  entityId: string;
  targetProviderId: string;
  wantedVersion: number;
  deliveredVersion: number;
  status: string;
  /** A create was attempted by an earlier attempt (it may have landed). */
  createAttemptedBefore: boolean;
  /** The partner's ID of this record, when linked. */
  partnerId: string | null;
  /** The record's columns (users and staff), as stored. */
  user: Record<string, unknown> | null;
}

export interface AttemptRecord {
  version: number;
  idempotencyKey: string;
  startedAt: Date;
  outcome: 'DELIVERED' | 'SKIPPED' | 'RETRY' | 'RATE_LIMITED' | 'DEAD';
  calls: string;
  httpStatus: number | null;
  error: string | null;
}

// DATE columns as 'yyyy-mm-dd' text: pg's default makes them local-midnight Dates.
const types = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === 1082 ? (v: string) => v : pg.types.getTypeParser(oid, format as 'text')),
};

export class DeliveryStore {
  readonly pool: pg.Pool;

  constructor(databaseUrl: string, poolSize = 10) {
    this.pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize, types } as pg.PoolConfig);
    // An idle connection dropped by the server (restart, failover) must not take the process down;
    // the next query opens a new one.
    this.pool.on('error', () => undefined);
  }

  /**
   * Reads what a delivery needs in one statement: the delivery, the
   * partner's ID of the record (when linked), the record, and whether an
   * earlier attempt may have created it in the partner. A delivery has
   * exactly one job (its ID is the job ID), so one attempt at a time runs
   * per record and connection. When the record is not linked yet, the
   * statement also marks a create as attempted, before any call is made.
   */
  async claim(deliveryId: string): Promise<ClaimedDelivery | undefined> {
    const { rows } = await this.pool.query(
      `WITH before AS (
         SELECT d.id,
                d."createAttemptedAt" IS NOT NULL
                  OR EXISTS (SELECT 1 FROM delivery_attempt a WHERE a."deliveryId" = d.id AND a.outcome NOT IN ('DELIVERED', 'SKIPPED')) AS "createAttemptedBefore",
                (SELECT l."externalId" FROM link l WHERE l."entityId" = d."entityId" AND l."providerId" = d."targetProviderId"
                   AND l."entityType" = d."entityType" LIMIT 1) AS "partnerId"
         FROM delivery d WHERE d.id = $1),
       mark AS (
         UPDATE delivery d SET "createAttemptedAt" = now()
         FROM before WHERE d.id = before.id AND d."entityType" = 'USER' AND before."partnerId" IS NULL AND d."createAttemptedAt" IS NULL)
       SELECT d.id, d."entityType"::text AS "entityType", d."entityId"::text AS "entityId", d."targetProviderId"::text AS "targetProviderId",
              d."wantedVersion", d."deliveredVersion", d.status::text AS status,
              before."createAttemptedBefore", before."partnerId", to_jsonb(u) AS "user"
       FROM delivery d JOIN before ON before.id = d.id
       LEFT JOIN user_record u ON u.id = d."entityId" AND d."entityType" IN ('USER', 'STAFF')`,
      [deliveryId],
    );
    return rows[0];
  }

  /**
   * Records a finished delivery (sent, or deliberately not) with its
   * attempt, and the partner's ID when the partner just created the record.
   * Stays PENDING when a newer version was wanted meanwhile: the answer then
   * says so and the caller delivers again.
   */
  async finish(
    claimed: ClaimedDelivery,
    attempt: AttemptRecord & { outcome: 'DELIVERED' | 'SKIPPED' },
    note: string | null,
    newLink: { clubId: string; externalId: string } | undefined,
  ): Promise<{ stillPending: boolean }> {
    const { rows } = await this.pool.query(
      `WITH d AS (
         UPDATE delivery SET "deliveredVersion" = GREATEST("deliveredVersion", $2),
           status = CASE WHEN "wantedVersion" > GREATEST("deliveredVersion", $2) THEN 'PENDING'::"DeliveryStatus" ELSE $3::text::"DeliveryStatus" END,
           "lastError" = $4, "updatedAt" = now()
         WHERE id = $1 RETURNING status = 'PENDING' AS "stillPending"),
       a AS (
         INSERT INTO delivery_attempt (id, "deliveryId", version, "idempotencyKey", "startedAt", "durationMs", outcome, calls, "httpStatus", error)
         VALUES ($5, $1, $2, $6, $7, $8, $3::text::"AttemptOutcome", $9, $10, NULL)),
       l AS (
         INSERT INTO link (id, "entityType", "entityId", "providerId", "clubId", "externalId")
         SELECT $11::uuid, $12::text::"EntityType", $13::uuid, $14::uuid, $15::uuid, $16::text WHERE $16::text IS NOT NULL
         ON CONFLICT ("providerId", "entityType", "clubId", "externalId") DO NOTHING)
       SELECT "stillPending" FROM d`,
      [
        claimed.id, attempt.version, attempt.outcome, note, randomUUID(), attempt.idempotencyKey, attempt.startedAt,
        Date.now() - attempt.startedAt.getTime(), attempt.calls, attempt.httpStatus,
        randomUUID(), claimed.entityType, claimed.entityId, claimed.targetProviderId, newLink?.clubId ?? null, newLink?.externalId ?? null,
      ],
    );
    return { stillPending: rows[0]?.stillPending === true };
  }

  /** Records a failed attempt; DEAD also dead-letters the delivery with the reason. */
  async fail(claimed: ClaimedDelivery, attempt: AttemptRecord & { outcome: 'RETRY' | 'RATE_LIMITED' | 'DEAD' }): Promise<void> {
    await this.pool.query(
      `WITH d AS (
         UPDATE delivery SET status = CASE WHEN $2::text = 'DEAD' THEN 'DEAD'::"DeliveryStatus" ELSE status END,
           "lastError" = $3, "updatedAt" = CASE WHEN $2::text = 'DEAD' THEN now() ELSE "updatedAt" END
         WHERE id = $1 RETURNING id)
       INSERT INTO delivery_attempt (id, "deliveryId", version, "idempotencyKey", "startedAt", "durationMs", outcome, calls, "httpStatus", error)
       VALUES ($4, $1, $5, $6, $7, $8, $2::text::"AttemptOutcome", $9, $10, $3)`,
      [
        claimed.id, attempt.outcome, attempt.error?.slice(0, 2000) ?? null, randomUUID(), attempt.version, attempt.idempotencyKey,
        attempt.startedAt, Date.now() - attempt.startedAt.getTime(), attempt.calls, attempt.httpStatus,
      ],
    );
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
