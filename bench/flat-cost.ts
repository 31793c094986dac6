import autocannon from 'autocannon';
import pg from 'pg';
import { userAsStatement } from '../src/store/record-store.ts';
import { benchEnv, checkpoint, median, type BenchEnv } from './bench-env.ts';
import { load, loadResultOf, mergeFailures, pacedLoad, startIngestHub, type LoadResult } from './ingest.ts';
import { cpuSeconds, cpuSpent } from './process-cpu.ts';

/**
 * Cost stays flat as data grows: the hub's API on a database already
 * holding N users of the tenant, measured for GET /user latency (random
 * stored records) and for ingest throughput (new records), at a small and a
 * large N, each in a database of its own. Both are seeded first, then
 * measured in alternating rounds (small, large, small, large, ...); each
 * size's figure is the median of its rounds, and each ratio the median of
 * the rounds' own ratios: this host's speed drifts by tens of percent over
 * minutes, and a ratio of two figures taken minutes apart measured the
 * drift as much as the data's size. Every GET round comes before the first
 * ingest round, so GETs read tables of exactly N users, and each ingest
 * round starts from them too (the records an ingest round adds are removed
 * after it). What grows with the tenant must be reached through indexes: the run also
 * counts the sequential scans of the growing tables while the hub is under
 * load.
 */
export interface SizeFigures {
  users: number;
  seedSeconds: number;
  /** Rounds measured; the load figures below are medians over them. */
  rounds: number;
  get: LoadResult;
  /**
   * Per measured GET: CPU time (µs) of the hub and of PostgreSQL, and the
   * database's block reads (pages not in its shared buffers, read from the
   * OS) and hits; where a GET's cost goes as the tenant grows.
   */
  getCost: { hubMicros?: number; postgresMicros?: number; blocksRead: number; blocksHit: number };
  /**
   * GET /user at a steady GET_STEADY_RATE, evenly paced (as the ingest
   * latency target is measured): its latency is the request's own work, not
   * the queue a saturating load keeps in front of it.
   */
  getSteady: LoadResult;
  ingest: LoadResult;
  /** Sequential scans of user_record and link while the hub was under load. */
  fullScans: number;
  /** The database's size once seeded (MiB), against the server's shared buffers (MiB) and its huge_pages setting. */
  databaseMiB: number;
  sharedBuffersMiB: number;
  hugePages: string;
  /** Plans of the save path's read and of the GET's queries, when asked for. */
  plans?: { query: string; plan: string }[];
}

const USER_PATH = '/connector/api/2011-11/user';
const GET_CONNECTIONS = 20;
const GET_STEADY_RATE = 1_000;
const INGEST_CONNECTIONS = 50;

export async function flatCost(options: { small: number; large: number; seconds: number; rounds?: number; explain?: boolean }) {
  const rounds = options.rounds ?? 3;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`rounds must be a whole number of at least 1, not ${options.rounds}`);
  const sizes: Size[] = [];
  try {
    sizes.push(await seeded(options.small, false));
    sizes.push(await seeded(options.large, options.explain ?? false));
    // One checkpoint for both (it is server-wide): the measurements start on data at rest.
    await checkpoint((sql) => sizes[0].db.query(sql));
    for (let round = 0; round < rounds; round++) for (const size of sizes) size.gets.push(await measureGets(size, options.seconds));
    for (let round = 0; round < rounds; round++) for (const size of sizes) size.ingests.push(await measureIngest(size, options.seconds));
    const [small, large] = await Promise.all(sizes.map(figuresOf));
    // Each ratio is the median of the rounds' own ratios: a round's two sizes ran minutes apart at most.
    const ratio = (pick: (size: Size, round: number) => number) => median(sizes[0].gets.map((_, round) => pick(sizes[1], round) / pick(sizes[0], round)));
    return {
      small,
      large,
      ingestRatio: ratio((size, round) => size.ingests[round].requestsPerSecond),
      getRateRatio: ratio((size, round) => size.gets[round].get.requestsPerSecond),
      getP50Ratio: ratio((size, round) => size.gets[round].get.p50),
      getP99Ratio: ratio((size, round) => size.gets[round].get.p99),
      getSteadyP50Ratio: ratio((size, round) => size.gets[round].getSteady.p50),
      getSteadyP99Ratio: ratio((size, round) => size.gets[round].getSteady.p99),
    };
  } finally {
    for (const size of sizes) {
      await size.db.end().catch(() => undefined);
      await size.env.close().catch((error: Error) => console.error(`could not drop a flat-cost database: ${error.message}`));
    }
  }
}

/** One size's database, seeded, and what its rounds measured so far. */
interface Size {
  users: number;
  env: BenchEnv;
  db: pg.Client;
  seedSeconds: number;
  databaseMiB: number;
  sharedBuffersMiB: number;
  hugePages: string;
  plans?: { query: string; plan: string }[];
  scansBefore: number;
  /** The bench's own connections (this client, the env's Prisma pool), not the hub's. */
  ownBackends: number[];
  gets: { get: LoadResult; getCost: SizeFigures['getCost']; getSteady: LoadResult }[];
  ingests: LoadResult[];
}

async function seeded(users: number, explain: boolean): Promise<Size> {
  const env = await benchEnv('postgres');
  const db = new pg.Client({ connectionString: env.databaseUrl });
  try {
    await db.connect();
    const seedSeconds = await seedUsers(db, env, users);
    const { rows: sizes } = await db.query<{ database: string; buffers: string; huge: string }>(
      `SELECT pg_database_size(current_database()) / 1048576 AS database,
              (SELECT setting::bigint * 8192 / 1048576 FROM pg_settings WHERE name = 'shared_buffers') AS buffers,
              current_setting('huge_pages') AS huge`,
    );
    return {
      users,
      env,
      db,
      seedSeconds,
      databaseMiB: Number(sizes[0].database),
      sharedBuffersMiB: Number(sizes[0].buffers),
      hugePages: sizes[0].huge,
      plans: explain ? await explainReads(db, env, users) : undefined,
      scansBefore: await fullScans(db),
      ownBackends: await clientBackends(db),
      gets: [],
      ingests: [],
    };
  } catch (error) {
    await db.end().catch(() => undefined);
    await env.close();
    throw error;
  }
}

/** A hub on the size's database for one round's load; its backends are gone when this returns. */
async function withHub<T>(size: Size, measure: (hub: Awaited<ReturnType<typeof startIngestHub>>) => Promise<T>): Promise<T> {
  const hub = await startIngestHub(size.env, '0');
  try {
    return await measure(hub);
  } finally {
    await hub.stop();
    // Backends publish their table statistics when they exit.
    await hubBackendsGone(size.db, size.ownBackends);
  }
}

/** One round of GETs: as fast as the hub answers (with their cost), then at a steady rate. */
function measureGets(size: Size, seconds: number): Promise<Size['gets'][number]> {
  const { env, db, users } = size;
  return withHub(size, async (hub) => {
    // As long of GETs first, so the measured ones are the steady state of a running hub: not the
    // hub's JIT warm-up, nor its database sessions' first touch of PostgreSQL's shared buffers.
    // Each new backend maps their pages into its memory on first touch, and a page fault on this
    // VM costs tens of µs: with 1,000,000 users, whose pages come and go through every buffer,
    // 20 fresh sessions running the GET's statement took 3.5 faults and ~370 µs of PostgreSQL's
    // CPU time a GET in their first 10 s, and ~0 faults and ~190 µs from their second 10 s on.
    // A warm-up of five seconds left that in the large size's measured window only.
    await getLoad(hub.url, env.token, users, seconds);
    const parts = { hub: { tree: hub.child.pid! }, postgres: { program: 'postgres' } };
    const [cpuBefore, blocksBefore] = [cpuSeconds(parts), await blockCounts(db)];
    const get = await getLoad(hub.url, env.token, users, seconds);
    const [spent, blocksAfter] = [cpuSpent(cpuBefore, cpuSeconds(parts)), await blockCounts(db)];
    const per = (value: number | undefined, scale = 1) => (value === undefined ? undefined : (value * scale) / get.requests);
    const getCost = {
      hubMicros: per(spent.hub, 1e6),
      postgresMicros: per(spent.postgres, 1e6),
      blocksRead: per(blocksAfter.read - blocksBefore.read)!,
      blocksHit: per(blocksAfter.hit - blocksBefore.hit)!,
    };
    const getSteady = await pacedLoad(hub.url, env.token, {
      seconds,
      connections: GET_CONNECTIONS,
      rate: GET_STEADY_RATE,
      request: () => ({ method: 'GET', path: getPath(users) }),
    });
    return { get, getCost, getSteady };
  });
}

/**
 * One round of ingest (new records, after a short warm-up of the same). The
 * records it adds are removed before the measured load and after it, so
 * every round starts from the N seeded users.
 */
function measureIngest(size: Size, seconds: number): Promise<LoadResult> {
  return withHub(size, async (hub) => {
    await load(hub.url, size.env.token, { seconds: Math.min(3, seconds), connections: INGEST_CONNECTIONS });
    await removeIngested(size.db);
    try {
      return await load(hub.url, size.env.token, { seconds, connections: INGEST_CONNECTIONS });
    } finally {
      await removeIngested(size.db);
    }
  });
}

/**
 * Deletes the users the ingest added, their links and change events, and
 * vacuums. They are found by their change events (the seeded users have
 * none) and reached through indexes, so the run's count of sequential scans
 * of the growing tables stays the hub's alone. The owner foreign key's
 * check is off for it (session_replication_role): the hub never deletes
 * users, so ownerId has no index, and the check would scan every user for
 * each one deleted; no user names an ingested one as its owner. That needs
 * a superuser: without one the added users stay, and the run says so.
 */
async function removeIngested(db: pg.Client): Promise<void> {
  try {
    await db.query(`BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL session_replication_role = replica;
      CREATE TEMP TABLE ingested ON COMMIT DROP AS SELECT DISTINCT "entityId" AS id FROM outbox_event WHERE "entityType" = 'USER';
      ANALYZE ingested;
      DELETE FROM link l USING ingested i WHERE l."entityId" = i.id;
      DELETE FROM user_record u USING ingested i WHERE u.id = i.id;
      DELETE FROM outbox_event;
      COMMIT`);
  } catch (error) {
    await db.query('ROLLBACK');
    console.error(`the users an ingest round added stay (${(error as Error).message}): later rounds start from more than N`);
    return;
  }
  await db.query('VACUUM user_record, link, outbox_event');
}

/** Load figures over rounds: medians of the rates and latencies, sums of the counts. */
function medianLoad(loads: LoadResult[]): LoadResult {
  return {
    requestsPerSecond: median(loads.map((l) => l.requestsPerSecond)),
    requests: loads.reduce((n, l) => n + l.requests, 0),
    p50: median(loads.map((l) => l.p50)),
    p99: median(loads.map((l) => l.p99)),
    non2xx: loads.reduce((n, l) => n + l.non2xx, 0),
    errors: loads.reduce((n, l) => n + l.errors, 0),
    failures: mergeFailures(loads),
  };
}

async function figuresOf(size: Size): Promise<SizeFigures> {
  const costs = size.gets.map((g) => g.getCost);
  const medianOf = (pick: (c: SizeFigures['getCost']) => number | undefined) => {
    const values = costs.map(pick).filter((v): v is number => v !== undefined);
    return values.length ? median(values) : undefined;
  };
  return {
    users: size.users,
    seedSeconds: size.seedSeconds,
    rounds: size.gets.length,
    get: medianLoad(size.gets.map((g) => g.get)),
    getCost: {
      hubMicros: medianOf((c) => c.hubMicros),
      postgresMicros: medianOf((c) => c.postgresMicros),
      blocksRead: medianOf((c) => c.blocksRead)!,
      blocksHit: medianOf((c) => c.blocksHit)!,
    },
    getSteady: medianLoad(size.gets.map((g) => g.getSteady)),
    ingest: medianLoad(size.ingests),
    fullScans: (await fullScans(size.db)) - size.scansBefore,
    databaseMiB: size.databaseMiB,
    sharedBuffersMiB: size.sharedBuffersMiB,
    hugePages: size.hugePages,
    plans: size.plans,
  };
}

/**
 * N users in A's club, each linked to A's recordID `seed-<g>`, with the
 * field set of an ingested user; no outbox events (nothing to deliver).
 * One INSERT ... SELECT per table: the record ID derived from g in both
 * statements links each user without a round trip per row.
 */
async function seedUsers(db: pg.Client, env: BenchEnv, users: number): Promise<number> {
  const started = performance.now();
  await db.query(
    `INSERT INTO user_record (id, "clientId", "clubId", "userType", "userStatus", firstname, lastname, birthdate, gender, address1, address2,
       city, zipcode, state, country, mobile, email, "homePhone", "workPhone", company, "createdBy", "createdDate", "modifiedBy", "modifiedDate", "updatedAt")
     SELECT md5('seed-' || g)::uuid, $1::uuid, $2::uuid, 'PROSPECT', 'ACTIVE', 'First' || g, 'Seeded', '1972-03-12', 'M', g || ' Fake St', 'Apartment 1a',
       'Spuzzum', '12345', 'WA', 'US', '555-555-5555', 's' || g || '@example.com', '555-666-6666', '555-777-7777', 'Acme Widgets', 'BENCH_A', now(), 'BENCH_A', now(), now()
     FROM generate_series(1, $3::int) g`,
    [env.clientId, env.clubId, users],
  );
  await db.query(
    `INSERT INTO link (id, "entityType", "entityId", "providerId", "clubId", "externalId")
     SELECT gen_random_uuid(), 'USER', md5('seed-' || g)::uuid, $1::uuid, $2::uuid, 'seed-' || g FROM generate_series(1, $3::int) g`,
    [env.providerA, env.clubId, users],
  );
  // VACUUM as well as ANALYZE: hint bits and the visibility map are set now, so neither the first
  // reads of the fresh rows nor an autovacuum of them land inside the measured loads.
  await db.query('VACUUM ANALYZE user_record, link');
  return (performance.now() - started) / 1000;
}

/** The path of a GET /user of a random one of the N stored users, by A's recordID. */
const getPath = (users: number) => `${USER_PATH}?provider=BENCH_A&client_id=A1&club_id=A-club&recordID=seed-${1 + Math.floor(Math.random() * users)}`;

/** GET /user by a random stored recordID per request, `GET_CONNECTIONS` connections as fast as the hub answers. */
async function getLoad(url: string, token: string, users: number, seconds: number): Promise<LoadResult> {
  const result = await autocannon({
    url: `${url}${USER_PATH}`,
    headers: { authorization: `Bearer ${token}` },
    connections: GET_CONNECTIONS,
    duration: seconds,
    requests: [
      {
        setupRequest: (request) => ({
          ...request,
          path: getPath(users),
        }),
      },
    ],
  });
  return loadResultOf(result);
}

/**
 * EXPLAIN ANALYZE of the save path's read (RecordStore.readByLink's
 * statement, for one key) and of the GET's statement (RecordStore.readUserAs
 * by A's IDs), for a stored record.
 */
async function explainReads(db: pg.Client, env: BenchEnv, users: number): Promise<{ query: string; plan: string }[]> {
  const recordID = `seed-${Math.ceil(users / 2)}`;
  const key = [env.providerA, 'USER', env.clubId, recordID];
  const get = userAsStatement(env.providerA, 'USER', { clubId: env.clubId, externalId: recordID });
  const queries: [string, string, unknown[]][] = [
    [
      'save path: read by link',
      `SELECT l."entityId"::text AS "entityId", to_jsonb(r) AS row
       FROM link l LEFT JOIN user_record r ON r.id = l."entityId"
       WHERE l."providerId" = $1 AND l."entityType" = $2 AND l."clubId" = $3 AND l."externalId" = $4`,
      key,
    ],
    ['GET: the user as A sees it, by recordID', get.text, get.values],
  ];
  const plans = [];
  for (const [query, sql, params] of queries) {
    const { rows } = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, params);
    plans.push({ query, plan: rows.map((r) => r['QUERY PLAN']).join('\n') });
  }
  return plans;
}

/** Sequential scans of the tables that grow with the tenant, since the database was created. */
async function fullScans(db: pg.Client): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT coalesce(sum(seq_scan), 0)::int AS n FROM pg_stat_user_tables WHERE relname IN ('user_record', 'link')`);
  return rows[0].n;
}

/**
 * The database's block reads and buffer hits so far (pg_stat_database; a
 * backend publishes its counts at the end of a transaction at most once
 * a second, so a reading may lag by about that much).
 */
async function blockCounts(db: pg.Client): Promise<{ read: number; hit: number }> {
  const { rows } = await db.query<{ read: string; hit: string }>(`SELECT blks_read AS read, blks_hit AS hit FROM pg_stat_database WHERE datname = current_database()`);
  return { read: Number(rows[0].read), hit: Number(rows[0].hit) };
}

/** The client connections to the bench database (this one, the env's Prisma pool). */
async function clientBackends(db: pg.Client): Promise<number[]> {
  const { rows } = await db.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'`);
  return rows.map((r) => r.pid);
}

/** Waits (up to 5 s) until the client connections other than `own` (the hub's) have closed. */
async function hubBackendsGone(db: pg.Client, own: number[]): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((await clientBackends(db)).some((pid) => !own.includes(pid)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [small = '10000', large = '1000000', seconds = '15', rounds = '3'] = process.argv.slice(2);
  const result = await flatCost({ small: Number(small), large: Number(large), seconds: Number(seconds), rounds: Number(rounds), explain: true });
  for (const { query, plan } of result.large.plans!) {
    console.log(`-- ${query} (${result.large.users.toLocaleString('en')} users)\n${plan}\n`);
    if (plan.includes('Seq Scan')) console.log(`!! ${query}: sequential scan\n`);
  }
  console.log(JSON.stringify(result, (key, value) => (key === 'plans' ? undefined : value), 2));
  process.exit(0);
}
