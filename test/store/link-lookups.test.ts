import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { RecordStore, userAsStatement } from '../../src/store/record-store.ts';
import { findPartnerId, PARTNER_ID_QUERY } from '../../src/store/links.ts';
import { createPrisma } from '../../src/store/database.ts';
import { KEYED_PLANS } from '../../src/store/sql-sessions.ts';
import { freshDatabase, type FreshDatabase } from '../support/fresh-database.ts';

const STAFF = 5_000;

/** The plan's nodes that read the link table that ran (subqueries included). */
function linkReads(node: Record<string, unknown>): Record<string, unknown>[] {
  const own = node['Relation Name'] === 'link' && Number(node['Actual Loops'] ?? 0) > 0 ? [node] : [];
  return [...own, ...((node.Plans as Record<string, unknown>[] | undefined) ?? []).flatMap(linkReads)];
}

/** Rows a plan read and threw away, over all its nodes (subqueries included). */
function rowsRemoved(node: Record<string, unknown>): number {
  const own = Number(node['Rows Removed by Filter'] ?? 0) * Number(node['Actual Loops'] ?? 1);
  return own + ((node.Plans as Record<string, unknown>[] | undefined) ?? []).reduce((sum, child) => sum + rowsRemoved(child), 0);
}

// PostgreSQL only: the stale statistics come from its ANALYZE, and the plans from per-connection session options
// (KEYED_PLANS) that PGlite's one shared session does not take.
describe.runIf(inject('databaseKind') === 'postgres')('the ID a provider knows a record by', () => {
  let database: FreshDatabase;
  let db: pg.Client;
  const provider = randomUUID();
  const client = randomUUID();
  const club = randomUUID();
  const user = randomUUID();
  const owner = randomUUID();

  /** EXPLAIN ANALYZE of a statement prepared and run as the stores run theirs (by name, generic plan). */
  async function explain(name: string, text: string, args: string[]): Promise<Record<string, unknown>> {
    await db.query(`PREPARE ${name} AS ${text}`);
    const { rows } = await db.query(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE ${name}(${args.map((a) => `'${a}'`).join(', ')})`);
    return rows[0]['QUERY PLAN'][0].Plan;
  }

  beforeAll(async () => {
    database = await freshDatabase(inject('databaseUrl'), 'connector_links');
    db = new pg.Client({ connectionString: database.url, options: KEYED_PLANS });
    await db.connect();
    const link = (type: string, entity: string, external: string) =>
      `SELECT gen_random_uuid(), '${type}'::"EntityType", ${entity}, '${provider}'::uuid, '${club}'::uuid, ${external}`;
    const insertLinks = `INSERT INTO link (id, "entityType", "entityId", "providerId", "clubId", "externalId")`;
    // Statistics taken while the provider had only users, as after its first import with autovacuum off
    // (or before autovacuum's next analyze); then its staff arrive.
    await db.query(`${insertLinks} ${link('USER', 'gen_random_uuid()', `'user-' || g`)} FROM generate_series(1, 2000) g`);
    await db.query('ANALYZE link');
    await db.query(`${insertLinks} ${link('STAFF', 'gen_random_uuid()', `'staff-' || g`)} FROM generate_series(1, ${STAFF}) g`);
    await db.query(`${insertLinks} ${link('STAFF', `'${owner}'::uuid`, `'the-owner'`)}`);
    await db.query(`${insertLinks} ${link('USER', `'${user}'::uuid`, `'the-user'`)}`);
    const record = (id: string, type: string, ownerId: string | null) =>
      `INSERT INTO user_record (id, "clientId", "clubId", "userType", "userStatus", "createdDate", "modifiedDate", "updatedAt", "ownerId")
       VALUES ('${id}', '${client}', '${club}', '${type}', 'ACTIVE', now(), now(), now(), ${ownerId ? `'${ownerId}'` : 'NULL'})`;
    await db.query(record(owner, 'STAFF', null));
    await db.query(record(user, 'PROSPECT', owner));
  });

  afterAll(async () => {
    await db?.end();
    await database?.drop();
  });

  it("a user's GET finds its owner's ID through the owner's own links, not by walking the provider's staff", async () => {
    const store = RecordStore.open(database.url, 1);
    try {
      expect(await store.readUserAs(provider, 'USER', { id: user })).toMatchObject({ recordID: 'the-user', ownerID: 'the-owner', leadSource: null });
      expect(await store.readUserAs(provider, 'USER', { clubId: club, externalId: 'the-user' })).toMatchObject({ ownerID: 'the-owner' });
    } finally {
      await store.close();
    }
    const byId = userAsStatement(provider, 'USER', { id: user });
    const byLink = userAsStatement(provider, 'USER', { clubId: club, externalId: 'the-user' });
    // Walking the provider's staff reads thousands of them (STAFF / 2 on average) and keeps one.
    expect(rowsRemoved(await explain('by_id', byId.text, byId.values as string[]))).toBeLessThan(10);
    expect(rowsRemoved(await explain('by_link', byLink.text, byLink.values as string[]))).toBeLessThan(10);
  });

  it('reads a link from its index alone, by a provider’s IDs and by the record (covering indexes)', async () => {
    // VACUUM marks the table's pages all-visible, as autovacuum does for a tenant's settled links.
    await db.query('VACUUM link');
    const byLink = userAsStatement(provider, 'USER', { clubId: club, externalId: 'the-user' });
    const byId = userAsStatement(provider, 'USER', { id: user });
    for (const [name, statement] of [['covered_by_link', byLink], ['covered_by_id', byId]] as const) {
      const reads = linkReads(await explain(name, statement.text, statement.values as string[]));
      // By link: the user's link; by ID: the user's recordID; both: the owner's ID (no lead source).
      expect(reads.length).toBeGreaterThanOrEqual(2);
      for (const read of reads) expect(read).toMatchObject({ 'Node Type': 'Index Only Scan', 'Heap Fetches': 0 });
    }
  });

  it("staff and lead-source sync find the partner's ID for a record the same way, in Prisma's sessions too", async () => {
    const prisma = createPrisma(database.url, 1);
    try {
      expect(await findPartnerId(prisma, provider, 'STAFF', owner)).toBe('the-owner');
      expect(await findPartnerId(prisma, provider, 'LEAD_SOURCE', owner)).toBeUndefined();
    } finally {
      await prisma.$disconnect();
    }
    // Prisma's sessions have no KEYED_PLANS: each execution is planned with its values, from the stale statistics.
    const plain = new pg.Client({ connectionString: database.url });
    await plain.connect();
    try {
      await plain.query(`PREPARE sync_lookup AS ${PARTNER_ID_QUERY}`);
      const { rows } = await plain.query(`EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE sync_lookup('${provider}', 'STAFF', '${owner}')`);
      expect(rowsRemoved(rows[0]['QUERY PLAN'][0].Plan)).toBeLessThan(10);
    } finally {
      await plain.end();
    }
  });
});
