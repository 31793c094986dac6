import type { Job, JobType, Queue } from 'bullmq';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryJob } from '../../src/delivery/delivery-queues.ts';
import { OutboxRelay } from '../../src/delivery/outbox-relay.ts';
import { createLogger } from '../../src/log.ts';
import { deliveryOf, eventually, postAs, settled, startRig, type PartnerSetup, type Rig } from '../support/delivery-rig.ts';

const prospect = { lastname: 'Bundle', userStatus: 'ACTIVE', userType: 'PROSPECT', email: 'bundle@example.com' };
const WAITING = ['waiting', 'paused', 'delayed'] as JobType[];

/**
 * A rig whose relay runs only when a test drains it (the engine's own relay
 * is stopped), so a test decides which changes one relay run sees, and whose
 * reconciler does not run on its own.
 */
function bundleRig(setup: PartnerSetup) {
  const state = {} as { rig: Rig; relay: OutboxRelay; queue: Queue };
  beforeAll(async () => {
    state.rig = await startRig([{ code: 'A' }, setup], { delivery: { reconcileIntervalMs: 600_000 } });
    await state.rig.engine.relay.stop();
    state.relay = new OutboxRelay(state.rig.hub.prisma, state.rig.engine.store, state.rig.engine.registry, state.rig.engine.queues, createLogger('silent'), {
      intervalMs: 60_000,
      clientIds: [state.rig.clientId],
    });
    const [toB] = await state.rig.engine.registry.all();
    state.queue = state.rig.engine.queues.queue(toB.providerClientId);
  });
  afterAll(async () => {
    await state.relay?.stop();
    await state.rig?.stop();
  });
  return state;
}

let saved = 0;
/** A saves a prospect named `firstname`; resolves with the hub UUID. */
const save = (rig: Rig, firstname: string, recordID = `bundle-${++saved}`) => postAs(rig, 'A', recordID, { ...prospect, firstname });

const jobsWaiting = async (queue: Queue) => (await queue.getJobs(WAITING)) as Job<DeliveryJob>[];
const createsOf = (rig: Rig, uuid: string) => rig.partners.B.fake!.applied.filter((a) => a.op === 'createUser' && a.body.externalRef === uuid).length;
const requestsFor = (rig: Rig, uuid: string) => rig.partners.B.fake!.requests.filter((q) => q.body.includes(uuid)).length;

describe('deliveries queued in bundles', () => {
  const s = bundleRig({ code: 'B', receives: { delivery: { concurrency: 2 } } });

  it('queues a run that brings more deliveries than the workers take at once in bundles, each delivery in one, and a lone change in a job of its own; each record arrives once', async () => {
    const { rig, relay, queue } = s;
    await queue.pause();
    const uuids: string[] = [];
    for (let i = 0; i < 9; i++) uuids.push(await save(rig, `Bea${i}`));
    expect(await relay.drain()).toBe(9);
    // Two workers: nine deliveries in bundles of five (ceil(9 / 2)), not nine jobs.
    const bundles = await jobsWaiting(queue);
    expect(bundles.map((j) => j.name)).toEqual(['bundle', 'bundle']);
    expect(bundles.map((j) => j.data.deliveryIds!.length).sort()).toEqual([4, 5]);
    const pending = await rig.hub.prisma.delivery.findMany({ where: { clientId: rig.clientId, status: 'PENDING' } });
    expect(pending.map((d) => d.id).sort()).toEqual(bundles.flatMap((j) => j.data.deliveryIds!).sort());
    for (const d of pending) expect(bundles.find((j) => j.data.deliveryIds!.includes(d.id))!.id).toBe(d.jobId);

    const lone = await save(rig, 'Lone');
    expect(await relay.drain()).toBe(1);
    const loneDelivery = (await deliveryOf(rig, lone, 'B'))!;
    expect(loneDelivery.jobId).toBeNull();
    const single = (await jobsWaiting(queue)).find((j) => j.id === loneDelivery.id)!;
    expect(single).toMatchObject({ name: 'USER', data: { deliveryId: loneDelivery.id } });

    await queue.resume();
    await settled(rig);
    for (const uuid of [...uuids, lone]) {
      expect(createsOf(rig, uuid)).toBe(1);
      const d = (await deliveryOf(rig, uuid, 'B'))!;
      expect(d.status).toBe('DELIVERED');
      expect(d.attemptsLog.map((a) => a.outcome)).toEqual(['DELIVERED']);
    }
  });

  it('keeps a delivery that is waiting in its bundle there when a newer version comes: one job, which sends the newest version', async () => {
    const { rig, relay, queue } = s;
    await queue.pause();
    const uuids = [];
    for (let i = 0; i < 4; i++) uuids.push(await save(rig, `Ned${i}`, `newer-${i}`));
    expect(await relay.drain()).toBe(4);
    const before = (await jobsWaiting(queue)).map((j) => j.id).sort();
    expect(before).toHaveLength(2);
    const bundleOfFirst = (await deliveryOf(rig, uuids[0], 'B'))!.jobId;

    expect(await save(rig, 'Newest', 'newer-0')).toBe(uuids[0]);
    expect(await relay.drain()).toBe(1);
    expect((await deliveryOf(rig, uuids[0], 'B'))!).toMatchObject({ jobId: bundleOfFirst, wantedVersion: 2 });
    // The relay adds the bundle's job again a second later (in case it was running): still the same two jobs.
    await new Promise((r) => setTimeout(r, 1_300));
    expect((await jobsWaiting(queue)).map((j) => j.id).sort()).toEqual(before);

    await queue.resume();
    await settled(rig);
    expect(createsOf(rig, uuids[0])).toBe(1);
    expect(rig.partners.B.fake!.userByRef(uuids[0])).toMatchObject({ firstName: 'Newest' });
    expect((await deliveryOf(rig, uuids[0], 'B'))!.attemptsLog.map((a) => [a.outcome, a.version])).toEqual([['DELIVERED', 2]]);
  });

  /** Three saves relayed in one run (two workers: bundles of two and one), held on the paused queue; the first's delivery. */
  const heldBundleOfThree = async (name: string) => {
    await s.queue.pause();
    const uuids = [await save(s.rig, `${name}0`), await save(s.rig, `${name}1`), await save(s.rig, `${name}2`)];
    expect(await s.relay.drain()).toBe(3);
    const first = (await deliveryOf(s.rig, uuids[0], 'B'))!;
    expect(first.jobId).toMatch(/^bundle-/);
    return { uuids, first };
  };

  it('lets only the delivery’s own job claim it: another job’s claim leaves it alone and marks no create as attempted', async () => {
    const { rig, queue } = s;
    const { uuids, first: d } = await heldBundleOfThree('Own');

    const stranger = await rig.engine.store.claim(d.id, d.id);
    expect(stranger).toMatchObject({ id: d.id, owned: false });
    expect((await deliveryOf(rig, uuids[0], 'B'))!.createAttemptedAt).toBeNull();
    const own = await rig.engine.store.claim(d.id, d.jobId!);
    expect(own).toMatchObject({ id: d.id, owned: true, createAttemptedBefore: false });
    expect((await deliveryOf(rig, uuids[0], 'B'))!.createAttemptedAt).not.toBeNull();

    await queue.resume();
    await settled(rig);
    for (const uuid of uuids) expect(createsOf(rig, uuid)).toBe(1);
  });

  it('runs a bundle past a delivery it no longer owns (handed to a job of its own), which only that job sends', async () => {
    const { rig, relay, queue } = s;
    const { uuids, first: handed } = await heldBundleOfThree('Gone');
    // As a hand-over leaves it, before the job of its own is added.
    await rig.hub.prisma.delivery.update({ where: { id: handed.id }, data: { jobId: null } });
    await queue.resume();
    await eventually(async () => (await deliveryOf(rig, uuids[1], 'B'))?.status === 'DELIVERED' && (await deliveryOf(rig, uuids[2], 'B'))?.status === 'DELIVERED');
    await eventually(async () => (await jobsWaiting(queue)).length === 0 && (await queue.getActiveCount()) === 0);
    expect(requestsFor(rig, uuids[0])).toBe(0);
    expect((await deliveryOf(rig, uuids[0], 'B'))!).toMatchObject({ status: 'PENDING', createAttemptedAt: null });

    await relay.requeue([handed.id]);
    await settled(rig);
    for (const uuid of uuids) expect(createsOf(rig, uuid)).toBe(1);
  });

  it('stamps a delivery a bundle hands over as changed, so a reconcile before its own job is added leaves it alone', async () => {
    const { rig, relay, queue } = s;
    const { uuids, first } = await heldBundleOfThree('Stamp');
    await rig.hub.prisma.$executeRaw`UPDATE delivery SET "updatedAt" = now() - interval '1 hour' WHERE id = ${first.id}::uuid`;
    const claimed = (await rig.engine.store.claim(first.id, first.jobId!))!;
    const attempt = { version: 1, idempotencyKey: crypto.randomUUID(), startedAt: new Date(), calls: 'createUser 503', httpStatus: 503, error: 'HTTP 503' };
    await rig.engine.store.fail(claimed, { ...attempt, outcome: 'RETRY' }, true);
    const handed = (await deliveryOf(rig, uuids[0], 'B'))!;
    expect(handed).toMatchObject({ status: 'PENDING', jobId: null });
    expect(Date.now() - handed.updatedAt.getTime()).toBeLessThan(60_000);
    // Its own job is not added yet: the queue holds fewer jobs than the pending deliveries need,
    // but none of them has been left alone for a minute.
    expect(await relay.reconcile(60_000)).toBe(0);
    await relay.requeue([first.id]);
    await queue.resume();
    await settled(rig);
    for (const uuid of uuids) expect(createsOf(rig, uuid)).toBe(1);
  });

  it('puts a lost bundle back as one job with the same ID and its deliveries', async () => {
    const { rig, relay, queue } = s;
    await queue.pause();
    const uuids = [];
    for (let i = 0; i < 6; i++) uuids.push(await save(rig, `Lost${i}`));
    expect(await relay.drain()).toBe(6);
    const [lost, kept] = await jobsWaiting(queue);
    await queue.remove(lost.id!);
    expect((await jobsWaiting(queue)).map((j) => j.id)).toEqual([kept.id]);

    expect(await relay.reconcile(0)).toBe(6);
    const back = await jobsWaiting(queue);
    expect(back.map((j) => j.id).sort()).toEqual([lost.id, kept.id].sort());
    expect(back.find((j) => j.id === lost.id)!.data.deliveryIds!.sort()).toEqual(lost.data.deliveryIds!.sort());
    // Nothing lost any more: the next reconcile adds nothing.
    expect(await relay.reconcile(0)).toBe(0);

    await queue.resume();
    await settled(rig);
    for (const uuid of uuids) expect(createsOf(rig, uuid)).toBe(1);
  });
});

describe('a bundle whose partner fails some of its deliveries', () => {
  // The fake fails the next request whose body holds a marker, as many times as the rule says.
  const rules: { marker: string; status: number; left: number }[] = [];
  const s = bundleRig({
    code: 'B',
    receives: {
      delivery: { concurrency: 1, attempts: 2, backoffMs: 100 },
      fake: {
        onRequest: (_method, _path, body) => {
          const rule = rules.find((r) => r.left > 0 && body.includes(r.marker));
          if (!rule) return;
          rule.left -= 1;
          s.rig.partners.B.fake!.failNext(1, rule.status);
        },
      },
    },
  });
  /** Saves these prospects and relays them in one run: one bundle (one worker), held until it is checked. */
  const bundleOf = async (...names: string[]) => {
    await s.queue.pause();
    const uuids = [];
    for (const name of names) uuids.push(await save(s.rig, name));
    expect(await s.relay.drain()).toBe(names.length);
    const ids = await Promise.all(uuids.map(async (u) => (await deliveryOf(s.rig, u, 'B'))!.jobId));
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(/^bundle-/);
    await s.queue.resume();
    return uuids;
  };

  it('hands a delivery that fails to a job of its own, which retries it with the attempts left, and goes on with the others', async () => {
    rules.push({ marker: 'Flaky', status: 503, left: 1 });
    const [flaky, ...fine] = await bundleOf('Flaky', 'Fine1', 'Fine2');
    await settled(s.rig);
    const d = (await deliveryOf(s.rig, flaky, 'B'))!;
    expect(d).toMatchObject({ status: 'DELIVERED', jobId: null });
    expect(d.attemptsLog.map((a) => [a.outcome, a.httpStatus])).toEqual([['RETRY', 503], ['DELIVERED', 201]]);
    expect(createsOf(s.rig, flaky)).toBe(1);
    for (const uuid of fine) {
      expect((await deliveryOf(s.rig, uuid, 'B'))!.attemptsLog.map((a) => a.outcome)).toEqual(['DELIVERED']);
      expect(createsOf(s.rig, uuid)).toBe(1);
    }
  });

  it('gives up after the connection’s attempts, the bundle’s counted', async () => {
    rules.push({ marker: 'Broken', status: 503, left: 2 });
    const [broken, fine] = await bundleOf('Broken', 'Fine3');
    await settled(s.rig);
    const d = (await deliveryOf(s.rig, broken, 'B'))!;
    expect(d.status).toBe('DEAD');
    expect(d.lastError).toMatch(/^gave up after 2 attempts: /);
    expect(d.attemptsLog.map((a) => a.outcome)).toEqual(['RETRY', 'DEAD']);
    expect((await deliveryOf(s.rig, fine, 'B'))!.status).toBe('DELIVERED');
  });

  it('dead-letters a delivery the partner refuses (422) after one attempt and delivers the rest of the bundle', async () => {
    rules.push({ marker: 'Refused', status: 422, left: 1 });
    const [refused, ...fine] = await bundleOf('Refused', 'Fine4', 'Fine5');
    await settled(s.rig);
    const d = (await deliveryOf(s.rig, refused, 'B'))!;
    expect(d.status).toBe('DEAD');
    expect(d.jobId).toMatch(/^bundle-/);
    expect(d.attemptsLog.map((a) => [a.outcome, a.httpStatus])).toEqual([['DEAD', 422]]);
    for (const uuid of fine) expect((await deliveryOf(s.rig, uuid, 'B'))!.status).toBe('DELIVERED');
    // An operator's replay gives it a job of its own (its bundle's job has ended), which delivers it.
    const replayed = await request(s.rig.hub.server).post(`/admin/deliveries/${d.id}/replay`).set('Authorization', `Bearer ${s.rig.hub.adminToken}`);
    expect(replayed.status).toBe(200);
    const again = await eventually(async () => {
      const now = (await deliveryOf(s.rig, refused, 'B'))!;
      return now.status === 'DELIVERED' ? now : undefined;
    }, 10_000);
    expect(again.jobId).toBeNull();
    expect(again.attemptsLog.map((a) => a.outcome)).toEqual(['DEAD', 'DELIVERED']);
    expect(createsOf(s.rig, refused)).toBe(1);
  });

  it('waits when told to slow down (429) and runs the bundle again, sending nothing twice', async () => {
    rules.push({ marker: 'Slow', status: 429, left: 1 });
    const uuids = await bundleOf('Quick1', 'Slow', 'Quick2');
    await settled(s.rig);
    const slow = (await deliveryOf(s.rig, uuids[1], 'B'))!;
    expect(slow.attemptsLog.map((a) => a.outcome)).toEqual(['RATE_LIMITED', 'DELIVERED']);
    // Three creates and the refused one: a delivery the first run finished is not sent again.
    expect(uuids.map((u) => requestsFor(s.rig, u))).toEqual([1, 2, 1]);
    for (const uuid of uuids) {
      expect(createsOf(s.rig, uuid)).toBe(1);
      expect((await deliveryOf(s.rig, uuid, 'B'))!.status).toBe('DELIVERED');
    }
  });
});

describe('a connection with an agreed rate', () => {
  const s = bundleRig({ code: 'B', receives: { delivery: { concurrency: 1, ratePerSecond: 50 } } });

  it('gets a job per delivery, however many a run brings: the queue’s limiter counts jobs', async () => {
    const { rig, relay, queue } = s;
    await queue.pause();
    const uuids = [await save(rig, 'Rate0'), await save(rig, 'Rate1'), await save(rig, 'Rate2')];
    expect(await relay.drain()).toBe(3);
    const jobs = await jobsWaiting(queue);
    expect(jobs.map((j) => j.name)).toEqual(['USER', 'USER', 'USER']);
    const deliveries = await Promise.all(uuids.map(async (u) => (await deliveryOf(rig, u, 'B'))!));
    expect(deliveries.map((d) => d.jobId)).toEqual([null, null, null]);
    expect(jobs.map((j) => j.id).sort()).toEqual(deliveries.map((d) => d.id).sort());
    await queue.resume();
    await settled(rig);
    for (const uuid of uuids) expect(createsOf(rig, uuid)).toBe(1);
  });
});
