import pg from 'pg';
import type { FieldValues, RecordSchema } from '../domain/record-schema.ts';
import type { LinkKey } from './links.ts';
import { eventIdOf, type RecordChange } from './outbox.ts';

/**
 * The save path in plain SQL on its own pool. A save is two statements:
 * read the record by the provider's IDs, then write it together with its
 * change event, the write conditional on the version read (optimistic
 * concurrency: a save that lost a race reads again and merges again). No
 * transaction stays open across the round trip.
 */
export type RecordTable = 'user_record' | 'lead_source';

type Queryable = Pick<pg.Pool, 'query'>;

export interface RecordWrite {
  id: string;
  clientId: string;
  clubId: string;
  /** The version this write creates (1 for a new record). */
  version: number;
  /**
   * Updates only: the modifiedDate read with version - 1. A newer date kept
   * without a new version (confirmUnchanged) must also stop a write based
   * on the older read.
   */
  expectedModifiedDate?: string | null;
  values: FieldValues;
  extra: Record<string, string | null>;
}

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

  /** The record a provider's IDs point at, if any. */
  async readByLink(table: RecordTable, key: LinkKey): Promise<{ entityId: string; row: Record<string, unknown> | null } | undefined> {
    const { rows } = await this.pool.query(
      `SELECT l."entityId"::text AS "entityId", to_jsonb(r) AS row
       FROM link l LEFT JOIN ${table} r ON r.id = l."entityId"
       WHERE l."providerId" = $1 AND l."entityType" = $2 AND l."clubId" = $3 AND l."externalId" = $4`,
      [key.providerId, key.entityType, key.clubId, key.externalId],
    );
    return rows[0];
  }

  /**
   * Creates the record, its link and its change event in one statement.
   * False when the link appeared meanwhile (a concurrent first save): read again.
   */
  create(table: RecordTable, schema: RecordSchema, key: LinkKey, row: RecordWrite, change: ChangeOrigin): Promise<boolean> {
    return createRecord(this.pool, table, schema, key, row, change);
  }

  /** Writes version `row.version` if the stored one is still what was read; false when it moved on. */
  async update(table: RecordTable, schema: RecordSchema, row: RecordWrite, change: ChangeOrigin): Promise<boolean> {
    const { sql, params } = writeStatement(table, schema, row, 'update');
    const n = params.length;
    const { rows } = await this.pool.query(
      `WITH w AS (${sql} AND "modifiedDate" IS NOT DISTINCT FROM $${n + 4}::timestamptz RETURNING id)
       INSERT INTO outbox_event (id, "entityType", "entityId", "clientId", version, "originProviderId")
       SELECT $${n + 1}::uuid, $${n + 2}::"EntityType", w.id, $2::uuid, $4::int, $${n + 3}::uuid FROM w RETURNING 1`,
      [...params, eventIdOf(row.id, row.version), change.entityType, change.originProviderId, row.expectedModifiedDate ?? null],
    );
    return rows.length > 0;
  }

  /**
   * A save that changes nothing is right only if the record is still the
   * version it was compared with; a newer modifiedDate it carries is kept
   * (no version, no event) so an older write arriving late is refused.
   * False when the record moved on: read again.
   */
  async confirmUnchanged(
    table: RecordTable,
    id: string,
    read: { version: number; modifiedDate: string | null },
    newerModifiedDate: string | undefined,
  ): Promise<boolean> {
    const same = `id = $1 AND version = $2 AND "modifiedDate" IS NOT DISTINCT FROM $3::timestamptz`;
    const { rows } = newerModifiedDate
      ? await this.pool.query(`UPDATE ${table} SET "modifiedDate" = $4 WHERE ${same} RETURNING 1`, [id, read.version, read.modifiedDate, newerModifiedDate])
      : await this.pool.query(`SELECT 1 FROM ${table} WHERE ${same}`, [id, read.version, read.modifiedDate]);
    return rows.length > 0;
  }

  /**
   * A new staff member or lead source whose arrival resolves references
   * waiting for it (defer policy): created and resolved in one transaction.
   */
  async createAndResolve(
    table: RecordTable,
    schema: RecordSchema,
    key: LinkKey,
    row: RecordWrite,
    change: ChangeOrigin,
    pending: { kind: 'owner' | 'leadSource'; ref: string },
  ): Promise<boolean> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const created = await createRecord(client, table, schema, key, row, change);
      if (created) await resolvePending(client, pending.kind, row.clientId, key.providerId, pending.ref, row.id);
      await client.query('COMMIT');
      return created;
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

export type ChangeOrigin = Omit<RecordChange, 'entityId' | 'version' | 'clientId'>;

// PostgreSQL types of the columns written (parameters of INSERT ... SELECT need explicit casts).
const ENUM_COLUMNS: Record<string, string> = { userType: '"UserType"', userStatus: '"UserStatus"' };
const FORMAT_TYPES: Record<string, string> = { date: 'date', timestamp: 'timestamptz', boolean: 'boolean' };

function columnType(schema: RecordSchema, name: string): string {
  const spec = schema.fields.find((f) => f.name === name);
  if (!spec) return name.endsWith('Id') ? 'uuid' : 'text';
  return ENUM_COLUMNS[name] ?? FORMAT_TYPES[spec.format.kind] ?? 'text';
}

function writeStatement(table: RecordTable, schema: RecordSchema, row: RecordWrite, mode: 'insert' | 'update'): { sql: string; params: unknown[] } {
  const columns: Record<string, unknown> = { ...row.extra };
  for (const spec of schema.fields) columns[spec.name] = row.values[spec.name] ?? null;
  const names = Object.keys(columns);
  const params: unknown[] = [row.id, row.clientId, row.clubId, row.version, ...names.map((n) => columns[n])];
  const placeholders = names.map((n, i) => `$${i + 5}::${columnType(schema, n)}`);
  const quoted = names.map((n) => `"${n}"`);
  const sql =
    mode === 'insert'
      ? `INSERT INTO ${table} (id, "clientId", "clubId", version, "updatedAt", ${quoted.join(', ')}) SELECT $1::uuid, $2::uuid, $3::uuid, $4::int, now(), ${placeholders.join(', ')} FROM l`
      : `UPDATE ${table} SET version = $4::int, "updatedAt" = now(), ${quoted.map((q, i) => `${q} = ${placeholders[i]}`).join(', ')}
         WHERE id = $1::uuid AND "clientId" = $2::uuid AND "clubId" = $3::uuid AND version = $4::int - 1`;
  return { sql, params };
}

async function createRecord(db: Queryable, table: RecordTable, schema: RecordSchema, key: LinkKey, row: RecordWrite, change: ChangeOrigin): Promise<boolean> {
  const { sql, params } = writeStatement(table, schema, row, 'insert');
  const n = params.length;
  const { rows } = await db.query(
    `WITH l AS (
       INSERT INTO link (id, "entityType", "entityId", "providerId", "clubId", "externalId")
       VALUES (gen_random_uuid(), $${n + 2}::"EntityType", $1::uuid, $${n + 4}::uuid, $3::uuid, $${n + 5}::text)
       ON CONFLICT ("providerId", "entityType", "clubId", "externalId") DO NOTHING RETURNING 1),
     w AS (${sql} RETURNING id)
     INSERT INTO outbox_event (id, "entityType", "entityId", "clientId", version, "originProviderId")
     SELECT $${n + 1}::uuid, $${n + 3}::"EntityType", w.id, $2::uuid, $4::int, $${n + 6}::uuid FROM w RETURNING 1`,
    [...params, eventIdOf(row.id, row.version), key.entityType, change.entityType, key.providerId, key.externalId, change.originProviderId],
  );
  return rows.length > 0;
}

async function resolvePending(db: Queryable, kind: 'owner' | 'leadSource', clientId: string, providerId: string, ref: string, targetId: string): Promise<void> {
  const [target, pending, other] =
    kind === 'owner' ? ['"ownerId"', '"pendingOwnerRef"', '"pendingLeadSourceRef"'] : ['"leadSourceId"', '"pendingLeadSourceRef"', '"pendingOwnerRef"'];
  const { rows } = await db.query<{ id: string; version: number }>(
    `UPDATE user_record SET ${target} = $4, ${pending} = NULL,
       "pendingProviderId" = CASE WHEN ${other} IS NULL THEN NULL ELSE "pendingProviderId" END,
       version = version + 1, "updatedAt" = now()
     WHERE "clientId" = $1 AND "pendingProviderId" = $2 AND ${pending} = $3
     RETURNING id::text AS id, version`,
    [clientId, providerId, ref, targetId],
  );
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO outbox_event (id, "entityType", "entityId", "clientId", version, "originProviderId")
     SELECT e.id, 'USER', e."entityId", $3, e.version, $4 FROM unnest($1::uuid[], $2::uuid[], $5::int[]) AS e(id, "entityId", version)`,
    [rows.map((r) => eventIdOf(r.id, r.version)), rows.map((r) => r.id), clientId, providerId, rows.map((r) => r.version)],
  );
}
