import pg from 'pg';
import type { FieldValues, RecordSchema } from '../domain/record-schema.ts';
import type { LinkKey } from './links.ts';
import { eventIdOf, type RecordChange } from './outbox.ts';

/**
 * The save path in plain SQL on its own pool: a save is one short
 * transaction of four or five statements (claim the link, lock the record,
 * write it together with its change event), so the ingest path spends its
 * time in PostgreSQL rather than in an ORM.
 */
export type RecordTable = 'user_record' | 'lead_source';

export class RecordStore {
  constructor(readonly pool: pg.Pool) {}

  static open(databaseUrl: string, poolSize: number): RecordStore {
    // A pool that cannot hand out a connection within 10 s is a hub that cannot take saves: UNAVAILABLE.
    const pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize, connectionTimeoutMillis: 10_000 });
    // An idle connection dropped by the server (restart, failover) must not take the process down;
    // the next save opens a new one.
    pool.on('error', () => undefined);
    return new RecordStore(pool);
  }

  async transaction<T>(work: (tx: RecordTx) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(new RecordTx(client));
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

export class RecordTx {
  constructor(private readonly client: pg.PoolClient) {}

  /**
   * The record's identity: (provider, club, type, recordID) -> hub UUID,
   * created when new. The no-op DO UPDATE locks the link row, so two saves
   * of the same record through the same ID run one after the other.
   */
  async claimLink(key: LinkKey): Promise<{ entityId: string; created: boolean }> {
    const { rows } = await this.client.query(
      `INSERT INTO link (id, "entityType", "entityId", "providerId", "clubId", "externalId")
       VALUES (gen_random_uuid(), $1, gen_random_uuid(), $2, $3, $4)
       ON CONFLICT ("providerId", "entityType", "clubId", "externalId") DO UPDATE SET "createdAt" = link."createdAt"
       RETURNING "entityId"::text AS "entityId", (xmax = 0) AS created`,
      [key.entityType, key.providerId, key.clubId, key.externalId],
    );
    return rows[0];
  }

  /** The stored row, locked until commit (saves through another provider's ID wait for it). */
  async lockRow(table: RecordTable, id: string): Promise<Record<string, unknown> | null> {
    const { rows } = await this.client.query(`SELECT to_jsonb(r) AS row FROM ${table} r WHERE id = $1 FOR UPDATE`, [id]);
    return rows[0]?.row ?? null;
  }

  /**
   * Writes the record's fields (and extra columns) as version `version` and
   * its change event, in one statement: the outbox row exists exactly when
   * the change does.
   */
  async writeRecord(
    table: RecordTable,
    schema: RecordSchema,
    row: { id: string; clientId: string; clubId: string; version: number; values: FieldValues; extra: Record<string, string | null> },
    change: Omit<RecordChange, 'entityId' | 'version' | 'clientId'>,
  ): Promise<void> {
    const columns: Record<string, unknown> = { ...row.extra };
    for (const spec of schema.fields) columns[spec.name] = row.values[spec.name] ?? null;
    const names = Object.keys(columns);
    const params: unknown[] = [row.id, row.clientId, row.clubId, row.version, ...names.map((n) => columns[n])];
    const placeholders = names.map((_, i) => `$${i + 5}`);
    const quoted = names.map((n) => `"${n}"`);
    const write =
      row.version === 1
        ? `INSERT INTO ${table} (id, "clientId", "clubId", version, "updatedAt", ${quoted.join(', ')}) VALUES ($1, $2, $3, $4, now(), ${placeholders.join(', ')})`
        : `UPDATE ${table} SET version = $4, "updatedAt" = now(), ${quoted.map((q, i) => `${q} = ${placeholders[i]}`).join(', ')} WHERE id = $1 AND "clientId" = $2 AND "clubId" = $3`;
    const n = params.length;
    params.push(eventIdOf(row.id, row.version), change.entityType, change.originProviderId);
    await this.client.query(
      `WITH w AS (${write} RETURNING id)
       INSERT INTO outbox_event (id, "entityType", "entityId", "clientId", version, "originProviderId")
       SELECT $${n + 1}, $${n + 2}, w.id, $2, $4, $${n + 3} FROM w`,
      params,
    );
  }

  /** Keeps a newer modifiedDate that changed nothing else (no version, no event). */
  async touchModifiedDate(table: RecordTable, id: string, modifiedDate: string): Promise<void> {
    await this.client.query(`UPDATE ${table} SET "modifiedDate" = $2 WHERE id = $1`, [id, modifiedDate]);
  }

  /**
   * A staff member or lead source arrived: users waiting for it (defer
   * policy) now point at it, each with a new version and change event.
   */
  async resolvePending(kind: 'owner' | 'leadSource', clientId: string, providerId: string, ref: string, targetId: string): Promise<number> {
    const [target, pending, other] =
      kind === 'owner' ? ['"ownerId"', '"pendingOwnerRef"', '"pendingLeadSourceRef"'] : ['"leadSourceId"', '"pendingLeadSourceRef"', '"pendingOwnerRef"'];
    const { rows } = await this.client.query<{ id: string; version: number }>(
      `UPDATE user_record SET ${target} = $4, ${pending} = NULL,
         "pendingProviderId" = CASE WHEN ${other} IS NULL THEN NULL ELSE "pendingProviderId" END,
         version = version + 1, "updatedAt" = now()
       WHERE "clientId" = $1 AND "pendingProviderId" = $2 AND ${pending} = $3
       RETURNING id::text AS id, version`,
      [clientId, providerId, ref, targetId],
    );
    if (rows.length) {
      await this.client.query(
        `INSERT INTO outbox_event (id, "entityType", "entityId", "clientId", version, "originProviderId")
         SELECT e.id, 'USER', e."entityId", $3, e.version, $4 FROM unnest($1::uuid[], $2::uuid[], $5::int[]) AS e(id, "entityId", version)`,
        [rows.map((r) => eventIdOf(r.id, r.version)), rows.map((r) => r.id), clientId, providerId, rows.map((r) => r.version)],
      );
    }
    return rows.length;
  }
}
