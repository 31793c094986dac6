import pg from 'pg';
import { Batcher } from '../store/batcher.ts';
import { partnerIdSql } from '../store/links.ts';
import { newRowId } from '../store/row-ids.ts';
import { isRowFault, POOL_WAIT_MS, StorePool } from '../store/sql-sessions.ts';

/**
 * The delivery hot path in plain SQL on its own pool: a delivery costs two
 * round trips to the database (claim, then finish or fail) instead of a
 * dozen ORM calls. Each statement is one atomic step. Claims and finishes
 * of concurrent jobs share a statement (group commit): one round trip, one
 * plan and one WAL flush for a batch instead of one per delivery.
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
  /** The claiming job is the delivery's job (DeliveryQueues.jobIdOf); any other leaves it alone. */
  owned: boolean;
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

/** An unrelayed change event, as the relay reads it. */
export interface RelayEvent {
  id: string;
  /** Its place in the order events were made (a bigint, as text). */
  seq: string;
  entityType: 'USER' | 'STAFF' | 'LEAD_SOURCE';
  entityId: string;
  clientId: string;
  version: number;
  originProviderId: string | null;
  /** Users only: the record's type (a receiver's agreement may not include it). */
  userType: string | null;
}

/** What one record's change asks of one receiving connection. */
export interface WantedDelivery {
  entityType: string;
  entityId: string;
  clientId: string;
  providerClientId: string;
  providerId: string;
  version: number;
  /** The bundle the relay would queue it in (null: a job of its own), if it was not pending already. */
  jobId: string | null;
}

/** A delivery row as the relay left it. */
export interface RelayedDelivery {
  id: string;
  entityType: string;
  providerClientId: string;
  status: string;
  /** Its job's bundle, null for a job of its own (DeliveryQueues.jobIdOf). */
  jobId: string | null;
  /** The row was there before (its job may be running). */
  existed: boolean;
}

// DATE columns as 'yyyy-mm-dd' text: pg's default makes them local-midnight Dates.
const types = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => (oid === 1082 ? (v: string) => v : pg.types.getTypeParser(oid, format as 'text')),
};

export class DeliveryStore {
  readonly pool: StorePool;
  private readonly claims: Batcher<ClaimRequest, ClaimedDelivery | undefined>;
  private readonly finishes: Batcher<FinishRow, boolean>;

  /**
   * @param oneSession the database serves every connection from one session (PGlite: see StorePool).
   * @param waitMs how long a statement waits for a connection of the pool (see POOL_WAIT_MS).
   */
  constructor(databaseUrl: string, poolSize = 10, oneSession = false, waitMs = POOL_WAIT_MS) {
    this.pool = new StorePool({ connectionString: databaseUrl, max: poolSize, connectionTimeoutMillis: waitMs, types } as pg.PoolConfig, oneSession);
    // Two batches never hold the same delivery (one job works on a delivery, and a key stays out of a batch
    // while another has it); a deadlock with the relay's upsert of the same deliveries is a row fault.
    this.claims = new Batcher({
      many: (requests) => this.claimMany(requests),
      one: async (request) => (await this.claimMany([request]))[0],
      keyOf: (request) => request.deliveryId,
      oneByOneAfter: isRowFault,
    });
    this.finishes = new Batcher({
      many: (rows) => this.finishMany(rows),
      one: async (row) => (await this.finishMany([row]))[0],
      keyOf: (row) => row.deliveryId,
      oneByOneAfter: isRowFault,
    });
  }

  /**
   * Reads what a delivery needs in one statement: the delivery, the
   * partner's ID of the record (when linked), the record, and whether an
   * earlier attempt may have created it in the partner. A delivery has
   * exactly one job (DeliveryQueues.jobIdOf), so one attempt at a time runs
   * per record and connection: `owned` says whether `jobId` is that job.
   * When the record is not linked yet and the job owns the delivery, the
   * statement also marks a create as attempted, before any call is made.
   */
  claim(deliveryId: string, jobId: string): Promise<ClaimedDelivery | undefined> {
    return this.claims.run({ deliveryId, jobId });
  }

  private async claimMany(requests: ClaimRequest[]): Promise<(ClaimedDelivery | undefined)[]> {
    const { rows } = await this.pool.query<ClaimedDelivery>({
      name: 'delivery-claim',
      text: CLAIM,
      values: [requests.map((r) => r.deliveryId), requests.map((r) => r.jobId)],
    });
    const byId = new Map(rows.map((row) => [row.id, row]));
    return requests.map((r) => byId.get(r.deliveryId));
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
    const stillPending = await this.finishes.run({
      deliveryId: claimed.id,
      version: attempt.version,
      outcome: attempt.outcome,
      note,
      attemptId: newRowId(),
      idempotencyKey: attempt.idempotencyKey,
      startedAt: attempt.startedAt,
      durationMs: Date.now() - attempt.startedAt.getTime(),
      calls: attempt.calls,
      httpStatus: attempt.httpStatus,
      linkId: newRowId(),
      entityType: claimed.entityType,
      entityId: claimed.entityId,
      providerId: claimed.targetProviderId,
      clubId: newLink?.clubId ?? null,
      externalId: newLink?.externalId ?? null,
    });
    return { stillPending };
  }

  private async finishMany(rows: FinishRow[]): Promise<boolean[]> {
    const column = <K extends keyof FinishRow>(key: K) => rows.map((row) => row[key]);
    const { rows: answers } = await this.pool.query<{ id: string; stillPending: boolean }>({
      name: 'delivery-finish',
      text: FINISH,
      values: [
        column('deliveryId'), column('version'), column('outcome'), column('note'), column('attemptId'), column('idempotencyKey'),
        column('startedAt'), column('durationMs'), column('calls'), column('httpStatus'), column('linkId'), column('entityType'),
        column('entityId'), column('providerId'), column('clubId'), column('externalId'),
      ],
    });
    const byId = new Map(answers.map((a) => [a.id, a.stillPending]));
    return rows.map((row) => byId.get(row.deliveryId) === true);
  }

  /**
   * One relay run's transaction: takes up to `limit` unrelayed events, oldest
   * first (events another relay holds are skipped), writes the deliveries
   * `fanOut` wants of them (one row per record and receiving connection,
   * carrying the newest version wanted) and marks the events relayed. Three
   * round trips (begin with the read, the writes, commit), which on the
   * embedded database is how long the run holds its one shared session.
   */
  async relayEvents(
    limit: number,
    clientIds: string[] | undefined,
    fanOut: (events: RelayEvent[]) => WantedDelivery[],
    after?: string,
  ): Promise<{ events: number; deliveries: RelayedDelivery[]; lastSeq?: string }> {
    // Every statement below reaches its rows by key, and the event read should walk the
    // unrelayed-events index in seq order and stop at the batch size. Statistics lag behind a
    // burst of events: the planner then expects a handful of unrelayed rows and picks a bitmap
    // scan that reads and sorts every unrelayed event, and sequential scans to update events
    // by ID, for every batch (a 100,000-event backlog costs quadratically). A run that cannot
    // finish within a minute (a lock held elsewhere) gives up, and the next tick tries again.
    return this.byKeys(async (client) => {
      const { rows: events } = await client.query<RelayEvent>(relayReadOf(limit, clientIds, after));
      if (events.length === 0) return { events: 0, deliveries: [] };
      const wanted = fanOut(events);
      const column = <K extends keyof WantedDelivery>(key: K) => wanted.map((w) => w[key]);
      const { rows: deliveries } = await client.query<RelayedDelivery>({
        name: 'relay-write',
        text: RELAY_WRITE,
        values: [
          wanted.map(() => newRowId()), column('entityType'), column('entityId'), column('clientId'), column('providerClientId'),
          column('providerId'), column('version'), column('jobId'), events.map((e) => e.id),
        ],
      });
      return { events: events.length, deliveries, lastSeq: events[events.length - 1].seq };
    });
  }

  /**
   * Runs `work` in a transaction of its own that reaches rows by index only
   * (no bitmap or sequential scans, whatever the statistics say) and gives
   * up on a statement that takes over a minute. Commits what `work` returns
   * from, rolls back what it throws.
   */
  private async byKeys<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    // A connection lost while held (a restart, a failover) fails the statement in flight; without a
    // listener its 'error' event would also end the process (the pool listens only to idle ones).
    const lost = (error: Error) => (broken = error);
    client.on('error', lost);
    try {
      await client.query(`BEGIN; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; SET LOCAL statement_timeout = '60s'`);
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((failed: Error) => (broken = failed));
      throw error;
    } finally {
      client.off('error', lost);
      // A connection that could not even roll back is closed, not handed to the next run.
      client.release(broken);
    }
  }

  /**
   * Records a failed attempt; DEAD also dead-letters the delivery with the
   * reason. `handOver`: the delivery leaves its bundle for a job of its own
   * (its `jobId` becomes null), which the caller adds next.
   */
  async fail(claimed: ClaimedDelivery, attempt: AttemptRecord & { outcome: 'RETRY' | 'RATE_LIMITED' | 'DEAD' }, handOver = false): Promise<void> {
    await this.pool.query(
      `WITH d AS (
         UPDATE delivery SET status = CASE WHEN $2::text = 'DEAD' THEN 'DEAD'::"DeliveryStatus" ELSE status END,
           "lastError" = $3,
           "jobId" = CASE WHEN $11::boolean THEN NULL ELSE "jobId" END,
           -- A hand-over is a change the reconciler leaves alone for its interval: the job follows.
           "updatedAt" = CASE WHEN $2::text = 'DEAD' OR $11::boolean THEN now() ELSE "updatedAt" END
         WHERE id = $1 RETURNING id)
       INSERT INTO delivery_attempt (id, "deliveryId", version, "idempotencyKey", "startedAt", "durationMs", outcome, calls, "httpStatus", error)
       VALUES ($4, $1, $5, $6, $7, $8, $2::text::"AttemptOutcome", $9, $10, $3)`,
      [
        claimed.id, attempt.outcome, attempt.error?.slice(0, 2000) ?? null, newRowId(), attempt.version, attempt.idempotencyKey,
        attempt.startedAt, Date.now() - attempt.startedAt.getTime(), attempt.calls, attempt.httpStatus, handOver,
      ],
    );
  }

  /**
   * Deletes the change events relayed more than `retentionMs` ago (of these
   * clients, or all), oldest first, `batchSize` a statement, and stops at
   * the first event made within that time: events are read in the order
   * they were made, so none after it is older. An unrelayed event stays,
   * whatever its age. An aborted `signal` ends it after the batch in hand.
   * Returns how many were deleted.
   */
  async pruneRelayed(retentionMs: number, options: { clientIds?: string[]; batchSize?: number; signal?: AbortSignal } = {}): Promise<number> {
    const { clientIds, batchSize = 1_000, signal } = options;
    let deleted = 0;
    let after = '0';
    while (!signal?.aborted) {
      // As the relay's read, the events are walked in their seq index's order.
      const page = await this.byKeys(async (client) => {
        const { rows } = await client.query<{ deleted: number; read: number; last: string | null; young: boolean }>({
          name: 'prune-relayed',
          text: PRUNE_RELAYED,
          values: [after, batchSize, retentionMs / 1000, clientIds ?? null],
        });
        return rows[0];
      });
      deleted += page.deleted;
      if (page.young || page.read < batchSize || page.last === null) break;
      after = page.last;
    }
    return deleted;
  }

  /**
   * Reclaims the dead rows of the tables whose indexes the relay and the
   * reconciler walk (unrelayed events, pending deliveries); see
   * OutboxRelayOptions.vacuumEvery.
   */
  async vacuum(): Promise<void> {
    await this.pool.query('VACUUM outbox_event, delivery');
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** A job's claim of one of its deliveries. */
interface ClaimRequest {
  deliveryId: string;
  jobId: string;
}

/** One finished delivery as the batched finish takes it. */
interface FinishRow {
  deliveryId: string;
  version: number;
  outcome: 'DELIVERED' | 'SKIPPED';
  note: string | null;
  attemptId: string;
  idempotencyKey: string;
  startedAt: Date;
  durationMs: number;
  calls: string;
  httpStatus: number | null;
  linkId: string;
  entityType: string;
  entityId: string;
  providerId: string;
  clubId: string | null;
  externalId: string | null;
}

// The relay's read of unrelayed events ($1: how many; `scope`: conditions on their client and seq).
const relayRead = (scope: string) => `SELECT e.id::text AS id, e.seq::text AS seq, e."entityType"::text AS "entityType", e."entityId"::text AS "entityId",
       e."clientId"::text AS "clientId", e.version, e."originProviderId"::text AS "originProviderId",
       CASE WHEN e."entityType" = 'USER' THEN (SELECT u."userType"::text FROM user_record u WHERE u.id = e."entityId") END AS "userType"
     FROM outbox_event e WHERE e."relayedAt" IS NULL ${scope}
     ORDER BY e.seq LIMIT $1 FOR UPDATE OF e SKIP LOCKED`;
const RELAY_READS = {
  all: relayRead(''),
  of: relayRead('AND e."clientId" = ANY($2::uuid[])'),
  after: relayRead('AND e.seq > $2::bigint'),
  ofAfter: relayRead('AND e."clientId" = ANY($2::uuid[]) AND e.seq > $3::bigint'),
};

/** The relay's read, of some clients or all, from the start of the index or after a seq (OutboxRelayOptions.serialized). */
function relayReadOf(limit: number, clientIds: string[] | undefined, after: string | undefined): pg.QueryConfig & { name: string } {
  if (clientIds && after !== undefined) return { name: 'relay-read-of-after', text: RELAY_READS.ofAfter, values: [limit, clientIds, after] };
  if (clientIds) return { name: 'relay-read-of', text: RELAY_READS.of, values: [limit, clientIds] };
  if (after !== undefined) return { name: 'relay-read-after', text: RELAY_READS.after, values: [limit, after] };
  return { name: 'relay-read', text: RELAY_READS.all, values: [limit] };
}

// The relay's writes: the wanted deliveries ($1-$8, one array per column) and the events relayed ($9).
// A delivery that was pending keeps its job (it may be running); one that becomes pending again
// gets the job the relay chose (no job works on a delivery that is not pending).
const RELAY_WRITE = `WITH relayed AS (UPDATE outbox_event SET "relayedAt" = now() WHERE id = ANY($9::uuid[]))
   INSERT INTO delivery (id, "entityType", "entityId", "clientId", "providerClientId", "targetProviderId", "wantedVersion", "jobId", "updatedAt")
   SELECT t.*, now() FROM unnest($1::uuid[], $2::"EntityType"[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[], $7::int[], $8::text[]) AS t
   ON CONFLICT ("entityId", "providerClientId") DO UPDATE SET
     "wantedVersion" = GREATEST(delivery."wantedVersion", EXCLUDED."wantedVersion"),
     status = CASE WHEN EXCLUDED."wantedVersion" > delivery."deliveredVersion" THEN 'PENDING'::"DeliveryStatus" ELSE delivery.status END,
     "jobId" = CASE WHEN delivery.status <> 'PENDING' AND EXCLUDED."wantedVersion" > delivery."deliveredVersion" THEN EXCLUDED."jobId" ELSE delivery."jobId" END,
     "updatedAt" = now()
   RETURNING id::text AS id, "entityType"::text AS "entityType", "providerClientId"::text AS "providerClientId",
             status::text AS status, "jobId", (xmax <> 0) AS existed`;

// One batch of DeliveryStore.pruneRelayed: the next $2 events after seq $1 (of clients $4, or all),
// and of them, the ones before the first made within $3 seconds that were relayed before that.
const PRUNE_RELAYED = `WITH page AS (
     SELECT seq, "createdAt" >= now() - make_interval(secs => $3) AS young FROM outbox_event
     WHERE seq > $1::bigint AND ($4::uuid[] IS NULL OR "clientId" = ANY($4::uuid[])) ORDER BY seq LIMIT $2),
   bound AS (SELECT min(seq) AS seq FROM page WHERE young),
   gone AS (
     DELETE FROM outbox_event e USING page p
     WHERE e.seq = p.seq AND p.seq < COALESCE((SELECT seq FROM bound), 9223372036854775807)
       AND e."relayedAt" < now() - make_interval(secs => $3)
     RETURNING 1)
   SELECT (SELECT count(*) FROM gone)::int AS deleted, (SELECT count(*) FROM page)::int AS read,
          (SELECT max(seq) FROM page)::text AS last, (SELECT seq FROM bound) IS NOT NULL AS young`;

// The claim of a batch of deliveries ($1: their IDs, $2: the claiming jobs' IDs); see DeliveryStore.claim.
const CLAIM = `WITH before AS (
     SELECT d.id, COALESCE(d."jobId", d.id::text) = c.job AS owned,
            d."createAttemptedAt" IS NOT NULL
              OR EXISTS (SELECT 1 FROM delivery_attempt a WHERE a."deliveryId" = d.id AND a.outcome NOT IN ('DELIVERED', 'SKIPPED')) AS "createAttemptedBefore",
            ${partnerIdSql('d."targetProviderId"', 'd."entityType"', 'd."entityId"')} AS "partnerId"
     FROM delivery d JOIN unnest($1::uuid[], $2::text[]) AS c(id, job) ON c.id = d.id),
   mark AS (
     UPDATE delivery d SET "createAttemptedAt" = now()
     FROM before WHERE d.id = before.id AND before.owned AND d."entityType" = 'USER' AND before."partnerId" IS NULL AND d."createAttemptedAt" IS NULL)
   SELECT d.id::text AS id, d."entityType"::text AS "entityType", d."entityId"::text AS "entityId", d."targetProviderId"::text AS "targetProviderId",
          d."wantedVersion", d."deliveredVersion", d.status::text AS status,
          before."createAttemptedBefore", before."partnerId", to_jsonb(u) AS "user", before.owned
   FROM delivery d JOIN before ON before.id = d.id
   LEFT JOIN user_record u ON u.id = d."entityId" AND d."entityType" IN ('USER', 'STAFF')`;

// The finish of a batch of deliveries, one array per FinishRow field; see DeliveryStore.finish.
const FINISH = `WITH t AS (
     SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::uuid[], $6::uuid[], $7::timestamptz[], $8::int[], $9::text[], $10::int[],
                          $11::uuid[], $12::text[], $13::uuid[], $14::uuid[], $15::uuid[], $16::text[])
       AS t("deliveryId", version, outcome, note, "attemptId", "idempotencyKey", "startedAt", "durationMs", calls, "httpStatus",
            "linkId", "entityType", "entityId", "providerId", "clubId", "externalId")),
   d AS (
     UPDATE delivery SET "deliveredVersion" = GREATEST("deliveredVersion", t.version),
       status = CASE WHEN "wantedVersion" > GREATEST("deliveredVersion", t.version) THEN 'PENDING'::"DeliveryStatus" ELSE t.outcome::"DeliveryStatus" END,
       "lastError" = t.note, "updatedAt" = now()
     FROM t WHERE delivery.id = t."deliveryId" RETURNING delivery.id, delivery.status = 'PENDING' AS "stillPending"),
   a AS (
     INSERT INTO delivery_attempt (id, "deliveryId", version, "idempotencyKey", "startedAt", "durationMs", outcome, calls, "httpStatus", error)
     SELECT "attemptId", "deliveryId", version, "idempotencyKey", "startedAt", "durationMs", outcome::"AttemptOutcome", calls, "httpStatus", NULL FROM t),
   l AS (
     INSERT INTO link (id, "entityType", "entityId", "providerId", "clubId", "externalId")
     SELECT "linkId", "entityType"::"EntityType", "entityId", "providerId", "clubId", "externalId" FROM t WHERE "externalId" IS NOT NULL
     ON CONFLICT ("providerId", "entityType", "clubId", "externalId") DO NOTHING)
   SELECT id::text AS id, "stillPending" FROM d`;
