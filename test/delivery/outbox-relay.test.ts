import type { JobType } from 'bullmq';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { DeliveryStore } from '../../src/delivery/delivery-store.ts';
import { OutboxRelay, type OutboxRelayOptions } from '../../src/delivery/outbox-relay.ts';
import { createLogger } from '../../src/log.ts';
import { API, userXml } from '../support/test-hub.ts';
import { eventually, FAST_DELIVERY, startRig, type Rig } from '../support/delivery-rig.ts';
import { freshDatabase } from '../support/fresh-database.ts';

let rig: Rig;
const relays: OutboxRelay[] = [];
beforeAll(async () => {
  rig = await startRig([{ code: 'A' }, { code: 'B', receives: {} }]);
  // The relays below are the only ones: the engine's own would take their events.
  await rig.engine.relay.stop();
});
afterAll(async () => {
  for (const relay of relays) await relay.stop();
  await rig?.stop();
});

let saved = 0;
async function saveAtA(): Promise<void> {
  const t = rig.partners.A.tenant;
  const res = await request(rig.hub.server).post(`${API}/user`).set('Authorization', t.auth).type('application/xml').send(userXml(t, `relay-${++saved}`, { firstname: 'Rita', lastname: 'Relay', userStatus: 'ACTIVE', userType: 'PROSPECT', email: 'rita@example.com' }));
  expect(res.status).toBe(200);
}
const unrelayed = () => rig.hub.prisma.outboxEvent.count({ where: { clientId: rig.clientId, relayedAt: null } });
function relay(options: Partial<OutboxRelayOptions>, logger = createLogger('silent')): OutboxRelay {
  const made = new OutboxRelay(rig.hub.prisma, rig.engine.store, rig.engine.registry, rig.engine.queues, logger, { intervalMs: 60_000, clientIds: [rig.clientId], ...options });
  relays.push(made);
  return made;
}
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the outbox relay', () => {
  it('relays, in one run, every event committed before it, over as many full batches as it takes, and the receiver gets each', async () => {
    for (let i = 0; i < 5; i++) await saveAtA();
    expect(await relay({ batchSize: 2 }).drain()).toBe(5);
    expect(await unrelayed()).toBe(0);
    await eventually(() => rig.partners.B.fake!.users.size >= 5, 10_000);
  });

  it('a run that fails midway leaves its events unrelayed and writes no delivery; the next run relays them on the same connections', async () => {
    await saveAtA();
    await saveAtA();
    const waiting = await unrelayed();
    const deliveries = () => rig.hub.prisma.delivery.count({ where: { clientId: rig.clientId } });
    const delivered = await deliveries();
    for (let i = 0; i < 6; i++) {
      // More runs than the pool has connections: a connection is not lost to a failed run.
      await expect(
        rig.engine.store.relayEvents(100, [rig.clientId], () => {
          throw new Error('the fan-out failed');
        }),
      ).rejects.toThrow('the fan-out failed');
    }
    // A write the database refuses (no such connection) is rolled back with the read's locks.
    await expect(
      rig.engine.store.relayEvents(100, [rig.clientId], (events) => [{ ...events[0], providerClientId: 'not-a-uuid', providerId: events[0].clientId, jobId: null }]),
    ).rejects.toThrow();
    expect(await unrelayed()).toBe(waiting);
    expect(await deliveries()).toBe(delivered);
    expect(await relay({}).drain()).toBe(waiting);
    expect(await unrelayed()).toBe(0);
  });

  // PGlite has one session and no backend to end.
  it.runIf(inject('databaseKind') === 'postgres')('a connection lost in the middle of a run fails the run, not the process, and the next run relays', async () => {
    const t = rig.partners.A.tenant;
    const save = (firstname: string) =>
      request(rig.hub.server).post(`${API}/user`).set('Authorization', t.auth).type('application/xml')
        .send(userXml(t, 'relay-lost', { firstname, lastname: 'Lost', userStatus: 'ACTIVE', userType: 'PROSPECT', email: 'lost@example.com' }));
    expect((await save('Lena')).status).toBe(200);
    await relay({}).drain();
    // Lena's delivery finished first: its job's finish would otherwise wait on the lock below too.
    const ofRecord = `FROM delivery d JOIN link l ON l."entityId" = d."entityId" WHERE l."externalId" = 'relay-lost'`;
    await eventually(async () => {
      const { rows } = await rig.engine.store.pool.query(`SELECT d.status::text AS status, d."deliveredVersion" = d."wantedVersion" AS done ${ofRecord}`);
      return rows.length === 1 && rows[0].status === 'DELIVERED' && rows[0].done === true;
    }, 10_000);
    expect((await save('Lina')).status).toBe(200);
    // Another transaction holds the record's delivery row: the run's write waits for it.
    const holder = await rig.engine.store.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 ${ofRecord} FOR UPDATE OF d`);
      const run = relay({}).drain();
      let waiting: { pid: number }[] = [];
      await eventually(async () => {
        // Read outside the holder's transaction: within one, pg_stat_activity keeps the snapshot of its first read.
        ({ rows: waiting } = await rig.engine.store.pool.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO delivery (%'`,
        ));
        return waiting.length === 1;
      }, 5_000);
      await holder.query('SELECT pg_terminate_backend($1)', [waiting[0].pid]);
      await expect(run).rejects.toThrow();
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await relay({}).drain()).toBeGreaterThanOrEqual(1);
    expect(await unrelayed()).toBe(0);
  });

  it('woken again within its spacing, runs once the spacing is over: not at once, and without losing the wake', async () => {
    const spaced = relay({ spacingMs: 1_500 });
    await saveAtA();
    spaced.wake();
    await eventually(async () => (await unrelayed()) === 0, 5_000);
    await saveAtA();
    spaced.wake();
    await pause(300);
    expect(await unrelayed()).toBe(1);
    await eventually(async () => (await unrelayed()) === 0, 5_000);
  });

  it("is spaced by the engine on the embedded database, where its transaction holds the one session every save uses, and not on PostgreSQL", () => {
    expect(rig.engine.relay.spacingMs).toBe(inject('databaseKind') === 'pglite' ? 50 : 0);
  });

  it('vacuums the unrelayed-event and delivery tables once every `vacuumEvery` events it relays', async () => {
    const vacuums = async () => {
      const rows = await rig.hub.prisma.$queryRaw<{ relname: string; vacuums: number }[]>`
        SELECT relname::text, vacuum_count::int AS vacuums FROM pg_stat_user_tables WHERE relname IN ('outbox_event', 'delivery') ORDER BY relname`;
      return rows.map((r) => `${r.relname} ${r.vacuums}`);
    };
    const vacuuming = relay({ vacuumEvery: 3 });
    const before = await vacuums();
    await saveAtA();
    await saveAtA();
    expect(await vacuuming.drain()).toBe(2);
    expect(await vacuums()).toEqual(before);
    await saveAtA();
    await saveAtA();
    expect(await vacuuming.drain()).toBe(2);
    const once = before.map((row) => row.replace(/\d+$/, (n) => String(Number(n) + 1)));
    await eventually(async () => JSON.stringify(await vacuums()) === JSON.stringify(once), 5_000);
    expect(await vacuums()).toEqual(once);
  });

  it('a vacuum that fails is logged, fails no run, and is tried again after the next `vacuumEvery` events', async () => {
    const lines: string[] = [];
    const logger = createLogger('warn', { write: (line: string) => void lines.push(line) });
    const vacuuming = relay({ vacuumEvery: 2 }, logger);
    // On the embedded database's one shared session, another client's open transaction fails a VACUUM this way.
    const vacuum = vi.spyOn(rig.engine.store, 'vacuum').mockRejectedValueOnce(new Error('VACUUM cannot run inside a transaction block'));
    try {
      await saveAtA();
      await saveAtA();
      expect(await vacuuming.drain()).toBe(2);
      expect(vacuum).toHaveBeenCalledTimes(1);
      expect(lines.map((line) => JSON.parse(line))).toMatchObject([{ level: 40, msg: 'vacuum of the outbox and deliveries failed', err: { message: 'VACUUM cannot run inside a transaction block' } }]);
      expect(await unrelayed()).toBe(0);
      await saveAtA();
      expect(await vacuuming.drain()).toBe(1);
      expect(vacuum).toHaveBeenCalledTimes(1);
      await saveAtA();
      expect(await vacuuming.drain()).toBe(1);
      expect(vacuum).toHaveBeenCalledTimes(2);
      expect(lines).toHaveLength(1);
    } finally {
      vacuum.mockRestore();
    }
  });

  it('is set by the engine to vacuum on the embedded database, which runs no autovacuum, and not on PostgreSQL', () => {
    expect(rig.engine.relay.vacuumEvery).toBe(inject('databaseKind') === 'pglite' ? 10_000 : undefined);
  });

  it('serialized (one transaction at a time), reads after the last event it relayed: not from the start of the index', async () => {
    const serialized = relay({ serialized: true });
    const walking = relay({});
    for (let i = 0; i < 3; i++) await saveAtA();
    expect(await serialized.drain()).toBe(3);
    // The first of the three.
    const first = await rig.hub.prisma.outboxEvent.findFirstOrThrow({ where: { clientId: rig.clientId }, orderBy: { seq: 'desc' }, skip: 2 });
    // An event before the last one relayed that is unrelayed: on a database that runs one
    // transaction at a time none can appear; made here by hand, it shows where the read starts.
    await rig.hub.prisma.outboxEvent.update({ where: { id: first.id }, data: { relayedAt: null } });
    await saveAtA();
    expect(await serialized.drain()).toBe(1);
    expect(await unrelayed()).toBe(1);
    // A relay that is not serialized (a server of concurrent sessions) reads from the start.
    expect(await walking.drain()).toBe(1);
    expect(await unrelayed()).toBe(0);
  });

  it('is serialized by the engine on the embedded database, whose one session runs one transaction at a time, and not on PostgreSQL', () => {
    expect(rig.engine.relay.serialized).toBe(inject('databaseKind') === 'pglite');
  });

  it('while a backlog is being delivered, finds no job lost: a delivery finishing between its two counts is not one', async () => {
    const b = rig.partners.B.fake!;
    // 100 deliveries finishing over about half a second (20 ms per call, 5 at a time), each counted
    // again and again: counting pending deliveries before jobs sees one finishing between the two
    // counts as lost in about half the runs.
    b.behaviour = { kind: 'slow', ms: 20 };
    try {
      for (let i = 0; i < 100; i++) await saveAtA();
      const relaying = relay({});
      expect(await relaying.drain()).toBe(100);
      const pending = () => rig.hub.prisma.delivery.count({ where: { clientId: rig.clientId, status: 'PENDING' } });
      let readded = 0;
      let checks = 0;
      while ((await pending()) > 0) {
        readded += await relaying.reconcile(0);
        checks += 1;
      }
      expect(checks).toBeGreaterThan(5);
      expect(readded).toBe(0);
    } finally {
      b.behaviour = { kind: 'ok' };
    }
  });

  it('counts a delivery that finishes just as its queue is counted as finished, not lost; a job really lost is re-added', async () => {
    const [toB] = (await rig.engine.registry.all()).filter((c) => c.clientId === rig.clientId);
    const queue = rig.engine.queues.queue(toB.providerClientId);
    // Jobs held waiting (no worker takes them from a paused queue), so the counts stay put.
    await queue.pause();
    const countJobs = queue.getJobCounts.bind(queue);
    const pendingDeliveries = () => rig.hub.prisma.delivery.findMany({ where: { clientId: rig.clientId, status: 'PENDING' } });
    try {
      for (let i = 0; i < 3; i++) await saveAtA();
      const relaying = relay({});
      const first = await relaying.drain().then(pendingDeliveries);
      expect(first).toHaveLength(3);
      // Redis counts a paused queue's jobs as waiting, BullMQ's PostgreSQL backend as paused.
      expect(Object.values(await countJobs('waiting', 'paused' as JobType)).reduce((a, b) => a + b, 0)).toBe(3);
      // One delivery finishes (its row, then its job) between reconcile's two counts, whichever it reads first.
      let finished = false;
      queue.getJobCounts = async (...types) => {
        if (!finished) {
          finished = true;
          await rig.hub.prisma.delivery.update({ where: { id: first[0].id }, data: { status: 'DELIVERED' } });
          await queue.remove(first[0].id);
        }
        return countJobs(...types);
      };
      expect(await relaying.reconcile(0)).toBe(0);
      expect(finished).toBe(true);
      // A job that is gone while its delivery is still pending is lost: put back.
      await queue.remove(first[1].id);
      expect(await relaying.reconcile(0)).toBe(2);
    } finally {
      queue.getJobCounts = countJobs;
      await queue.resume();
    }
    await eventually(async () => (await pendingDeliveries()).length === 0, 10_000);
  });

  it('once stopped, ignores wakes (a save during shutdown starts no run)', async () => {
    const stopped = relay({});
    await stopped.stop();
    await saveAtA();
    stopped.wake();
    await pause(300);
    expect(await unrelayed()).toBe(1);
    expect(await relay({}).drain()).toBe(1);
  });
});

describe('the prune of relayed change events', () => {
  const HOUR = 3_600_000;
  const events = () => rig.hub.prisma.outboxEvent.findMany({ where: { clientId: rig.clientId }, orderBy: { seq: 'asc' } });
  /** Makes events of the client look made and relayed `hours` earlier than they were. */
  const backdate = (hours: number, ids?: string[]) =>
    rig.hub.prisma.$executeRaw`UPDATE outbox_event SET "createdAt" = "createdAt" - make_interval(hours => ${hours}),
      "relayedAt" = "relayedAt" - make_interval(hours => ${hours})
      WHERE "clientId" = ${rig.clientId}::uuid AND (${ids ?? null}::uuid[] IS NULL OR id = ANY(${ids ?? null}::uuid[]))`;

  it('deletes the events relayed longer ago than the retention, oldest first over as many batches as it takes; keeps unrelayed ones, whatever their age, and stops at the first young one', async () => {
    // An even number of events before the last two, so that in batches of two the young one opens
    // a batch and the old one after it is read with it.
    const earlier = (await events()).length;
    for (let i = 0; i < 8 + (earlier % 2); i++) await saveAtA();
    await relay({}).drain();
    const all = await events();
    // The last two: one made and relayed now, then one made and relayed two hours ago (events are
    // walked in the order they were made). Every event before them (this file's earlier ones too)
    // made and relayed two hours ago, but one, among the last of them, was never relayed.
    const [young, lateOld] = all.slice(-2);
    const old = all.slice(0, -2);
    await backdate(2, [...old, lateOld].map((e) => e.id));
    const stuck = old[old.length - 2];
    await rig.hub.prisma.outboxEvent.update({ where: { id: stuck.id }, data: { relayedAt: null } });
    const deliveries = () => rig.hub.prisma.delivery.findMany({ where: { clientId: rig.clientId }, orderBy: { id: 'asc' } });
    await eventually(async () => (await deliveries()).every((d) => d.status !== 'PENDING'), 10_000);
    const delivered = await deliveries();
    expect(await rig.engine.store.pruneRelayed(HOUR, { clientIds: [rig.clientId], batchSize: 2 })).toBe(old.length - 1);
    expect((await events()).map((e) => e.id)).toEqual([stuck.id, young.id, lateOld.id]);
    // Nothing more to delete, and a retention longer than their age keeps them.
    expect(await rig.engine.store.pruneRelayed(HOUR, { clientIds: [rig.clientId], batchSize: 2 })).toBe(0);
    expect(await rig.engine.store.pruneRelayed(3 * HOUR, { clientIds: [rig.clientId] })).toBe(0);
    expect(await events()).toHaveLength(3);
    // The deliveries the deleted events made are untouched, and the stuck event is still relayed when its turn comes.
    expect(await deliveries()).toEqual(delivered);
    expect(await unrelayed()).toBe(1);
    expect(await relay({}).drain()).toBe(1);
  });

  it('prunes only the relay’s clients, and nothing once stopping', async () => {
    await saveAtA();
    await relay({}).drain();
    await backdate(2);
    const before = (await events()).length;
    expect(before).toBeGreaterThan(0);
    const otherClient = relay({ clientIds: [crypto.randomUUID()] });
    expect(await otherClient.prune(HOUR)).toBe(0);
    // Nor once its engine is stopping.
    expect(await relay({}).prune(HOUR, AbortSignal.abort())).toBe(0);
    expect(await events()).toHaveLength(before);
    expect(await relay({}).prune(HOUR)).toBe(before);
    expect(await events()).toHaveLength(0);
  });

  // Of every client, as the hub runs it: in a database of its own, whose events are all this test's
  // (in the run's shared database, other files' younger events come first, and the prune stops at them).
  // PGlite serves one database only.
  it.runIf(inject('databaseKind') === 'postgres')('prunes every client’s events when not scoped to some (clientIds null), as the hub runs it', async () => {
    const own = await freshDatabase(inject('databaseUrl'), 'connector_prune');
    const store = new DeliveryStore(own.url, 2);
    try {
      const [x, y] = [crypto.randomUUID(), crypto.randomUUID()];
      const insert = (clientId: string, hoursAgo: number, relayed: boolean) =>
        store.pool.query(
          `INSERT INTO outbox_event (id, "entityType", "entityId", "clientId", version, "createdAt", "relayedAt")
           VALUES (gen_random_uuid(), 'USER', gen_random_uuid(), $1, 1, now() - make_interval(hours => $2), CASE WHEN $3::boolean THEN now() - make_interval(hours => $2) END)`,
          [clientId, hoursAgo, relayed],
        );
      for (const [clientId, hoursAgo, relayed] of [[x, 3, true], [y, 3, true], [x, 3, false], [y, 2, true], [x, 0, true], [y, 2, true]] as const) await insert(clientId, hoursAgo, relayed);
      expect(await store.pruneRelayed(HOUR, { batchSize: 2 })).toBe(3);
      const { rows } = await store.pool.query(`SELECT "clientId"::text AS client, "relayedAt" IS NULL AS unrelayed FROM outbox_event ORDER BY seq`);
      expect(rows).toEqual([{ client: x, unrelayed: true }, { client: x, unrelayed: false }, { client: y, unrelayed: false }]);
    } finally {
      await store.close();
      await own.drop();
    }
  });

  it('vacuums after a prune that deleted events, on a relay that vacuums (the embedded database)', async () => {
    const vacuums = async () => {
      const [row] = await rig.hub.prisma.$queryRaw<{ vacuums: number }[]>`SELECT vacuum_count::int AS vacuums FROM pg_stat_user_tables WHERE relname = 'outbox_event'`;
      return row.vacuums;
    };
    const vacuuming = relay({ vacuumEvery: 1_000_000 });
    const before = await vacuums();
    expect(await vacuuming.prune(HOUR)).toBe(0);
    expect(await vacuums()).toBe(before);
    await saveAtA();
    await relay({}).drain();
    await backdate(2);
    expect(await vacuuming.prune(HOUR)).toBe(1);
    await eventually(async () => (await vacuums()) === before + 1, 5_000);
  });

  it('is run by the engine with the configured retention (CONNECTOR_EVENT_RETENTION_HOURS, a week by default)', async () => {
    await saveAtA();
    await saveAtA();
    await relay({}).drain();
    const [first] = await events();
    await backdate(24 * 7 + 1, [first.id]);
    expect(await rig.engine.pruneEvents()).toBe(1);
    expect(await events()).toHaveLength(1);
    expect(loadConfig({}).delivery.eventRetentionMs).toBe(7 * 24 * HOUR);
    expect(loadConfig({ CONNECTOR_EVENT_RETENTION_HOURS: '0.5' }).delivery.eventRetentionMs).toBe(HOUR / 2);
    expect(() => loadConfig({ CONNECTOR_EVENT_RETENTION_HOURS: '-1' })).toThrow(/CONNECTOR_EVENT_RETENTION_HOURS/);
    expect(() => loadConfig({ CONNECTOR_EVENT_RETENTION_HOURS: '1e8' })).toThrow(/CONNECTOR_EVENT_RETENTION_HOURS/);
  });

  it('is run by the engine once at start, then every pruneEveryMs with the configured retention, and never after its stop', async () => {
    const prune = vi.spyOn(OutboxRelay.prototype, 'prune');
    try {
      const engine = await rig.anotherEngine({ pruneEveryMs: 100, defaults: { ...FAST_DELIVERY, eventRetentionMs: 42 * HOUR } });
      const ownCalls = () => prune.mock.calls.filter((_, i) => prune.mock.contexts[i] === engine.relay);
      // The one at start, made before start returned: no interval has fired yet.
      expect(ownCalls()).toHaveLength(1);
      await eventually(() => ownCalls().length >= 4, 10_000);
      expect(ownCalls().every(([retentionMs, signal]) => retentionMs === 42 * HOUR && signal?.aborted === false)).toBe(true);
      await engine.stop();
      const made = ownCalls().length;
      await pause(300);
      expect(ownCalls()).toHaveLength(made);
    } finally {
      prune.mockRestore();
    }
  });

  it('is ended by the engine’s stop, which waits for the batch in hand', async () => {
    let signal: AbortSignal | undefined;
    let ended = false;
    // A long prune (the first after an upgrade): it runs until told to stop, then finishes its batch.
    const prune = vi.spyOn(OutboxRelay.prototype, 'prune').mockImplementationOnce(async (_retentionMs, given) => {
      signal = given;
      await new Promise((resolve) => given!.addEventListener('abort', resolve, { once: true }));
      await pause(200);
      ended = true;
      return 0;
    });
    try {
      const engine = await rig.anotherEngine();
      expect(signal?.aborted).toBe(false);
      await engine.stop();
      expect(signal!.aborted).toBe(true);
      expect(ended).toBe(true);
      // A second stop (the rig's, or a second SIGTERM) waits for the same shutdown.
      await engine.stop();
    } finally {
      prune.mockRestore();
    }
  });
});
