import { createHash } from 'node:crypto';
import pg from 'pg';
import type { FieldValues, RecordSchema } from '../domain/record-schema.ts';
import { Batcher, type BatcherOptions } from './batcher.ts';
import { isRowFault, POOL_WAIT_MS, StorePool } from './sql-sessions.ts';
import { partnerIdSql, type LinkKey } from './links.ts';
import { eventIdOf, type RecordChange } from './outbox.ts';
import { newRowId } from './row-ids.ts';

/**
 * The save path in plain SQL on its own pool. A save is two statements:
 * read the record by the provider's IDs, then write it together with its
 * change event, the write conditional on the version read (optimistic
 * concurrency: a save that lost a race reads again and merges again). No
 * transaction stays open across the round trip. Concurrent saves share
 * their statements (group commit, see batcher.ts): the reads of one turn
 * of the event loop are one SELECT, their creates one INSERT, their
 * updates one UPDATE, each with its change events.
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

export interface LinkedRow {
  entityId: string;
  row: Record<string, unknown> | null;
}

export type CreateOutcome = { created: true } | { created: false; found: LinkedRow | undefined };

export interface UserAsProvider {
  row: Record<string, unknown> & { id: string; clubId: string; userType: string };
  recordID: string | null;
  leadSource: string | null;
  ownerID: string | null;
}

interface KeyedWrite {
  key: LinkKey;
  row: RecordWrite;
  change: ChangeOrigin;
}

export class RecordStore {
  private readonly batchers = new Map<string, unknown>();

  constructor(readonly pool: StorePool) {}

  /**
   * @param options.oneSession the database serves every connection from one session (PGlite: see StorePool).
   * @param options.waitMs how long a save waits for a connection of the pool (see POOL_WAIT_MS).
   */
  static open(databaseUrl: string, poolSize: number, options: { oneSession?: boolean; waitMs?: number } = {}): RecordStore {
    // A pool that cannot hand out a connection in time (POOL_WAIT_MS) is a hub that cannot take saves:
    // UNAVAILABLE. A save waits at most 5 s for a row another transaction holds (then UNAVAILABLE, retry), so
    // one stuck record cannot hold the saves batched with it for long.
    const pool = new StorePool(
      { connectionString: databaseUrl, max: poolSize, connectionTimeoutMillis: options.waitMs ?? POOL_WAIT_MS, lock_timeout: 5_000 },
      options.oneSession ?? false,
    );
    return new RecordStore(pool);
  }

  /** The record a provider's IDs point at, if any. */
  readByLink(table: RecordTable, key: LinkKey): Promise<LinkedRow | undefined> {
    return this.batcher(`read:${table}`, () => ({
      many: (keys: LinkKey[]) => readManyByLink(this.pool, table, keys),
      one: async (k: LinkKey) => (await readManyByLink(this.pool, table, [k]))[0],
    })).run(key);
  }

  /**
   * A user or staff member as one provider sees it, in one statement: the
   * record, the provider's own ID for it, and the provider's IDs for its
   * lead source and owner (absent when the provider has none).
   */
  async readUserAs(
    providerId: string,
    entityType: 'USER' | 'STAFF',
    where: { id: string } | { clubId: string; externalId: string },
  ): Promise<UserAsProvider | undefined> {
    const statement = userAsStatement(providerId, entityType, where);
    const { rows } = await this.pool.query<UserAsProvider>(statement);
    return rows[0];
  }

  /**
   * Creates the record, its link and its change event in one statement.
   * When the link exists already (the record is not new, or a concurrent
   * first save won), nothing is written and the stored record comes back
   * instead, read in the same statement (`found`; absent when it committed
   * too late for the statement to see it: read again).
   */
  create(table: RecordTable, schema: RecordSchema, key: LinkKey, row: RecordWrite, change: ChangeOrigin): Promise<CreateOutcome> {
    const write = { key, row, change };
    return this.batcher(`create:${table}:${columnsOf(schema, row).key}`, () => ({
      many: (writes: KeyedWrite[]) => createMany(this.pool, table, schema, writes),
      one: async (w: KeyedWrite) => (await createMany(this.pool, table, schema, [w]))[0],
      keyOf: (w: KeyedWrite) => linkKeyText(w.key),
      oneByOneAfter: isRowFault,
    })).run(write);
  }

  /** Writes version `row.version` if the stored one is still what was read; false when it moved on. */
  update(table: RecordTable, schema: RecordSchema, row: RecordWrite, change: ChangeOrigin): Promise<boolean> {
    return this.batcher(`update:${table}:${columnsOf(schema, row).key}`, () => ({
      many: (writes: Omit<KeyedWrite, 'key'>[]) => updateMany(this.pool, table, schema, writes),
      one: async (w: Omit<KeyedWrite, 'key'>) => (await updateMany(this.pool, table, schema, [w]))[0],
      keyOf: (w: Omit<KeyedWrite, 'key'>) => w.row.id,
      oneByOneAfter: isRowFault,
    })).run({ row, change });
  }

  /** One batcher per statement shape (table, operation, columns written). */
  private batcher<I, O>(name: string, make: () => BatcherOptions<I, O>): Batcher<I, O> {
    let batcher = this.batchers.get(name) as Batcher<I, O> | undefined;
    if (!batcher) this.batchers.set(name, (batcher = new Batcher(make())));
    return batcher;
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
      const [{ created }] = await createMany(client, table, schema, [{ key, row, change }]);
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
    await this.pool.close();
  }
}

/** RecordStore.readUserAs's statement, named for preparing. */
export function userAsStatement(
  providerId: string,
  entityType: 'USER' | 'STAFF',
  where: { id: string } | { clubId: string; externalId: string },
): pg.QueryConfig & { name: string; values: unknown[] } {
  const select = `SELECT to_jsonb(r) AS row, ${partnerIdSql('$1', `'LEAD_SOURCE'`, 'r."leadSourceId"')} AS "leadSource", ${partnerIdSql('$1', `'STAFF'`, 'r."ownerId"')} AS "ownerID"`;
  return 'id' in where
    ? {
        name: 'read-user-as-id',
        text: `${select}, ${partnerIdSql('$1', '$2::"EntityType"', 'r.id')} AS "recordID" FROM user_record r WHERE r.id = $3::uuid`,
        values: [providerId, entityType, where.id],
      }
    : {
        name: 'read-user-as-link',
        text: `${select}, l."externalId" AS "recordID" FROM link l JOIN user_record r ON r.id = l."entityId"
               WHERE l."providerId" = $1 AND l."entityType" = $2::"EntityType" AND l."clubId" = $3::uuid AND l."externalId" = $4`,
        values: [providerId, entityType, where.clubId, where.externalId],
      };
}

export type ChangeOrigin = Omit<RecordChange, 'entityId' | 'version' | 'clientId'>;

// PostgreSQL types of the columns written (array parameters need explicit element types).
const ENUM_COLUMNS: Record<string, string> = { userType: '"UserType"', userStatus: '"UserStatus"' };
const FORMAT_TYPES: Record<string, string> = { date: 'date', timestamp: 'timestamptz', boolean: 'boolean' };

function columnType(schema: RecordSchema, name: string): string {
  const spec = schema.fields.find((f) => f.name === name);
  if (!spec) return name.endsWith('Id') ? 'uuid' : 'text';
  return ENUM_COLUMNS[name] ?? FORMAT_TYPES[spec.format.kind] ?? 'text';
}

/** The record columns a write sets besides id, scope and version: its extra columns, then the schema's fields. */
interface Columns {
  names: string[];
  /** The names joined: which writes can share a statement. */
  key: string;
}

// Per schema, by the write's extra columns: a handful of combinations, computed once each.
const columnLists = new WeakMap<RecordSchema, Map<string, Columns>>();
const fieldNameSets = new WeakMap<RecordSchema, Set<string>>();

function columnsOf(schema: RecordSchema, row: RecordWrite): Columns {
  let lists = columnLists.get(schema);
  if (!lists) columnLists.set(schema, (lists = new Map()));
  const extra = Object.keys(row.extra);
  const extraKey = extra.join();
  let columns = lists.get(extraKey);
  if (!columns) {
    const names = [...new Set([...extra, ...schema.fields.map((f) => f.name)])];
    columns = { names, key: names.join() };
    lists.set(extraKey, columns);
  }
  return columns;
}

function fieldNamesOf(schema: RecordSchema): Set<string> {
  let names = fieldNameSets.get(schema);
  if (!names) fieldNameSets.set(schema, (names = new Set(schema.fields.map((f) => f.name))));
  return names;
}

function valueOf(schema: RecordSchema, row: RecordWrite, name: string): unknown {
  return fieldNamesOf(schema).has(name) ? (row.values[name] ?? null) : row.extra[name];
}

const linkKeyText = (k: LinkKey) => `${k.providerId}/${k.entityType}/${k.clubId}/${k.externalId}`;

/**
 * A statement over a batch: one array parameter per column, unnested into
 * the rows `t`. Its text depends only on the columns, not on the batch size,
 * so it is prepared once per connection (named) and reused.
 */
function unnestStatement(name: string, columns: { as: string; type: string }[], body: string): pg.QueryConfig {
  const text = `WITH t AS (SELECT * FROM unnest(${columns.map((c, i) => `$${i + 1}::${c.type}[]`).join(', ')}) WITH ORDINALITY AS t(${columns.map((c) => c.as).join(', ')}, i))\n${body}`;
  return { name: `${name}-${createHash('sha1').update(text).digest('hex').slice(0, 12)}`, text };
}

async function readManyByLink(db: Queryable, table: RecordTable, keys: LinkKey[]): Promise<(LinkedRow | undefined)[]> {
  const statement = unnestStatement(
    `read-${table}`,
    [{ as: 'provider', type: 'uuid' }, { as: 'type', type: '"EntityType"' }, { as: 'club', type: 'uuid' }, { as: 'external', type: 'text' }],
    `SELECT t.i::int AS i, l."entityId"::text AS "entityId", to_jsonb(r) AS row
     FROM t JOIN link l ON l."providerId" = t.provider AND l."entityType" = t.type AND l."clubId" = t.club AND l."externalId" = t.external
     LEFT JOIN ${table} r ON r.id = l."entityId"`,
  );
  const { rows } = await db.query<LinkedRow & { i: number }>({
    ...statement,
    values: [keys.map((k) => k.providerId), keys.map((k) => k.entityType), keys.map((k) => k.clubId), keys.map((k) => k.externalId)],
  });
  const found: (LinkedRow | undefined)[] = keys.map(() => undefined);
  for (const { i, entityId, row } of rows) found[i - 1] = { entityId, row };
  return found;
}

/** Columns every write carries, then the record's own columns as c0, c1, …. */
function writeColumns(schema: RecordSchema, writes: Omit<KeyedWrite, 'key'>[], head: { as: string; type: string; of(w: KeyedWrite): unknown }[]) {
  const { names } = columnsOf(schema, writes[0].row);
  const columns = [
    ...head,
    ...names.map((n, j) => ({ as: `c${j}`, type: columnType(schema, n), of: (w: KeyedWrite) => valueOf(schema, w.row, n) })),
  ];
  return { names: names.map((n) => `"${n}"`), columns, values: columns.map((c) => writes.map((w) => c.of(w as KeyedWrite))) };
}

const WRITE_HEAD = [
  { as: 'id', type: 'uuid', of: (w: KeyedWrite) => w.row.id },
  { as: 'client', type: 'uuid', of: (w: KeyedWrite) => w.row.clientId },
  { as: 'club', type: 'uuid', of: (w: KeyedWrite) => w.row.clubId },
  { as: 'version', type: 'int', of: (w: KeyedWrite) => w.row.version },
  { as: 'event', type: 'uuid', of: (w: KeyedWrite) => eventIdOf(w.row.id, w.row.version) },
  { as: 'change_type', type: '"EntityType"', of: (w: KeyedWrite) => w.change.entityType },
  { as: 'origin', type: 'uuid', of: (w: KeyedWrite) => w.change.originProviderId },
];

const INSERT_EVENTS = `INSERT INTO outbox_event (id, "entityType", "entityId", "clientId", version, "originProviderId")
  SELECT t.event, t.change_type, t.id, t.client, t.version, t.origin FROM t JOIN w ON w.id = t.id`;

/**
 * New records with their links and change events, in one statement. A
 * record whose link already exists is not written; the record the link
 * points at is read instead, as far as the statement's snapshot shows it.
 */
async function createMany(db: Queryable, table: RecordTable, schema: RecordSchema, writes: KeyedWrite[]): Promise<CreateOutcome[]> {
  const { names, columns, values } = writeColumns(schema, writes, [
    ...WRITE_HEAD,
    { as: 'link_type', type: '"EntityType"', of: (w) => w.key.entityType },
    { as: 'provider', type: 'uuid', of: (w) => w.key.providerId },
    { as: 'external', type: 'text', of: (w) => w.key.externalId },
    { as: 'link_id', type: 'uuid', of: () => newRowId() },
  ]);
  const own = names.map((_, j) => `t.c${j}`);
  const statement = unnestStatement(
    `create-${table}`,
    columns,
    // Links in a stable order, so two batches claiming the same key wait for each other instead of deadlocking.
    `, l AS (INSERT INTO link (id, "entityType", "entityId", "providerId", "clubId", "externalId")
        SELECT t.link_id, t.link_type, t.id, t.provider, t.club, t.external FROM t ORDER BY t.provider, t.club, t.external
        ON CONFLICT ("providerId", "entityType", "clubId", "externalId") DO NOTHING RETURNING "entityId"),
     w AS (INSERT INTO ${table} (id, "clientId", "clubId", version, "updatedAt", ${names.join(', ')})
        SELECT t.id, t.client, t.club, t.version, now(), ${own.join(', ')} FROM t JOIN l ON l."entityId" = t.id RETURNING id),
     o AS (${INSERT_EVENTS})
     SELECT t.i::int AS i, w.id IS NOT NULL AS created, x."entityId"::text AS "entityId", to_jsonb(r) AS row
     FROM t LEFT JOIN w ON w.id = t.id
     LEFT JOIN link x ON w.id IS NULL AND x."providerId" = t.provider AND x."entityType" = t.link_type AND x."clubId" = t.club AND x."externalId" = t.external
     LEFT JOIN ${table} r ON r.id = x."entityId"`,
  );
  const { rows } = await db.query<{ i: number; created: boolean } & LinkedRow>({ ...statement, values });
  const outcomes: CreateOutcome[] = writes.map(() => ({ created: false, found: undefined }));
  for (const { i, created, entityId, row } of rows) outcomes[i - 1] = created ? { created: true } : { created: false, found: entityId ? { entityId, row } : undefined };
  return outcomes;
}

/**
 * New versions of records with their change events, in one statement; each
 * written only if its record is still the version (and modifiedDate) it was
 * read at, else false: read again.
 */
async function updateMany(db: Queryable, table: RecordTable, schema: RecordSchema, writes: Omit<KeyedWrite, 'key'>[]): Promise<boolean[]> {
  const { names, columns, values } = writeColumns(schema, writes, [
    ...WRITE_HEAD,
    { as: 'expected', type: 'timestamptz', of: (w) => w.row.expectedModifiedDate ?? null },
  ]);
  const statement = unnestStatement(
    `update-${table}`,
    columns,
    // Rows locked in id order, as every statement locking several records does: two of them never deadlock.
    `, locked AS MATERIALIZED (SELECT r.id FROM ${table} r JOIN t ON r.id = t.id ORDER BY r.id FOR NO KEY UPDATE OF r),
     w AS (UPDATE ${table} r SET version = t.version, "updatedAt" = now(), ${names.map((n, j) => `${n} = t.c${j}`).join(', ')}
        FROM t WHERE r.id = t.id AND r.id IN (SELECT id FROM locked) AND r."clientId" = t.client AND r."clubId" = t.club AND r.version = t.version - 1
          AND r."modifiedDate" IS NOT DISTINCT FROM t.expected
        RETURNING r.id),
     o AS (${INSERT_EVENTS})
     SELECT id::text AS id FROM w`,
  );
  const { rows } = await db.query<{ id: string }>({ ...statement, values });
  const written = new Set(rows.map((r) => r.id));
  return writes.map((w) => written.has(w.row.id));
}

async function resolvePending(db: Queryable, kind: 'owner' | 'leadSource', clientId: string, providerId: string, ref: string, targetId: string): Promise<void> {
  const [target, pending, other] =
    kind === 'owner' ? ['"ownerId"', '"pendingOwnerRef"', '"pendingLeadSourceRef"'] : ['"leadSourceId"', '"pendingLeadSourceRef"', '"pendingOwnerRef"'];
  const waiting = `"clientId" = $1 AND "pendingProviderId" = $2 AND ${pending} = $3`;
  const { rows } = await db.query<{ id: string; version: number }>(
    // Locked in id order first, like the batched updates (see updateMany).
    `WITH locked AS MATERIALIZED (SELECT id FROM user_record WHERE ${waiting} ORDER BY id FOR NO KEY UPDATE)
     UPDATE user_record SET ${target} = $4, ${pending} = NULL,
       "pendingProviderId" = CASE WHEN ${other} IS NULL THEN NULL ELSE "pendingProviderId" END,
       version = version + 1, "updatedAt" = now()
     WHERE id IN (SELECT id FROM locked) AND ${waiting}
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
