import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { eventually, settled, startRig, type PartnerSetup, type Rig, deliveryOf, postAs, withRig } from '../support/delivery-rig.ts';

const prospect = { firstname: 'Pete', lastname: 'Prospect', userStatus: 'ACTIVE', userType: 'PROSPECT', email: 'pete@example.com' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A saves a prospect; resolves with the hub UUID. */
const post = (rig: Rig, recordID: string, fields: Record<string, string> = {}) => postAs(rig, 'A', recordID, { ...prospect, ...fields });


const createsOf = (rig: Rig, partner: string, uuid: string) =>
  rig.partners[partner].fake!.applied.filter((a) => a.op === 'createUser' && a.body.externalRef === uuid).length;

describe('a partner that goes away and comes back', () => {
  const rig = withRig([
    { code: 'B', receives: { delivery: { attempts: 12, backoffMs: 100 } } },
    { code: 'C', receives: {} },
  ]);

  it('keeps delivering to the other partners during the outage, then delivers all 20 to the returning partner exactly once', async () => {
    const r = rig();
    const b = r.partners.B.fake!;
    const c = r.partners.C.fake!;
    await b.stop();
    const outageStarted = Date.now();
    // A short outage: B is back on the same port after 4 s, however far the posting got.
    let backAt = 0;
    const comeBack = sleep(4_000).then(async () => {
      expect(b.requests).toHaveLength(0);
      await b.start();
      backAt = Date.now();
    });

    // 20 prospects; C must get each one promptly while B refuses connections.
    const lagsToC: Promise<number>[] = [];
    const uuids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const uuid = await post(r, `out-${i}`, { firstname: `Out${i}` });
      const posted = Date.now();
      uuids.push(uuid);
      lagsToC.push(eventually(() => c.userByRef(uuid), 5_000, 20).then(() => Date.now() - posted));
      if (i === 0) {
        // B's delivery is waiting, not given up: a retry without any HTTP answer.
        const first = await eventually(async () => {
          const d = await deliveryOf(r, uuid, 'B');
          return d && d.attemptsLog.length > 0 ? d : undefined;
        });
        expect(backAt).toBe(0);
        expect(first.status).toBe('PENDING');
        expect(first.attemptsLog[0]).toMatchObject({ outcome: 'RETRY', httpStatus: null });
        expect(first.attemptsLog[0].calls).toMatch(/^createUser no answer \d+ms$/);
        expect(first.attemptsLog[0].error).toMatch(/cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
      }
      await sleep(50);
    }
    const lags = await Promise.all(lagsToC);
    expect(Math.max(...lags)).toBeLessThan(2_000);
    await comeBack;
    // C got records while B was down, not only after it came back.
    const receivedByC = (uuid: string) => c.requests.find((q) => q.method === 'POST' && q.body.includes(uuid))!.at;
    expect(uuids.filter((u) => receivedByC(u) < backAt).length).toBeGreaterThanOrEqual(10);
    expect(Date.now() - outageStarted).toBeLessThan(10_000);

    // Normally within seconds; a probe that failed just before B came back may hold the breaker open up to a minute.
    await eventually(() => uuids.every((u) => b.userByRef(u)), 70_000, 100);
    await settled(r);

    for (const uuid of uuids) expect(createsOf(r, 'B', uuid)).toBe(1);
    expect(b.users.size).toBe(20);
    // C got each record once too.
    for (const uuid of uuids) expect(createsOf(r, 'C', uuid)).toBe(1);

    const deliveries = await Promise.all(uuids.map((u) => deliveryOf(r, u, 'B')));
    let retried = 0;
    for (const d of deliveries) {
      expect(d!.status).toBe('DELIVERED');
      const attempts = d!.attemptsLog;
      expect(attempts.at(-1)!.outcome).toBe('DELIVERED');
      // Everything before the delivered attempt is a retry that got no answer at all.
      for (const a of attempts.slice(0, -1)) {
        expect(a).toMatchObject({ outcome: 'RETRY', httpStatus: null });
        expect(a.calls).toContain('no answer');
        expect(a.startedAt.getTime()).toBeLessThan(backAt);
      }
      if (attempts.length > 1) retried++;
    }
    expect(retried).toBeGreaterThan(0);
    // Records that waited behind the open breaker were not tried during the outage at all.
    const totalRetries = deliveries.reduce((n, d) => n + d!.attemptsLog.length - 1, 0);
    expect(totalRetries).toBeLessThan(20 * 3);
  }, 100_000);

  it.runIf(inject('databaseKind') === 'postgres')(
    'survives a two-minute outage while records keep arriving: everything arrives once, nothing dead-lettered, few attempts burnt',
    async () => {
      // A rig of its own, with delivery settings close to the defaults (12 attempts).
      const r = await startRig([
        { code: 'A' },
        { code: 'B', receives: { delivery: { attempts: 12, backoffMs: 500 } } },
        { code: 'C', receives: {} },
      ]);
      try {
        const b = r.partners.B.fake!;
        const c = r.partners.C.fake!;
        await b.stop();
        const outageStarted = Date.now();
        const uuids: string[] = [];
        const lagsToC: Promise<number>[] = [];
        // A new prospect every 3 s while B is down; C gets each one promptly.
        let i = 0;
        while (Date.now() - outageStarted < 117_000) {
          const uuid = await post(r, `long-${i++}`, { firstname: `Long${i}` });
          const posted = Date.now();
          uuids.push(uuid);
          lagsToC.push(eventually(() => c.userByRef(uuid), 5_000, 50).then(() => Date.now() - posted));
          await sleep(3_000);
        }
        expect(uuids.length).toBeGreaterThanOrEqual(35);
        expect(Math.max(...(await Promise.all(lagsToC)))).toBeLessThan(2_000);
        expect(await r.hub.prisma.delivery.count({ where: { clientId: r.clientId, status: 'DEAD' } })).toBe(0);
        expect(b.users.size).toBe(0);

        await sleep(Math.max(0, 120_000 - (Date.now() - outageStarted)));
        await b.start();
        // The breaker's cool-down grows to a minute, and a job that lost its queue lock while the
        // worker waited comes back only with the stalled-job check (30 s): allow both.
        await eventually(() => uuids.every((u) => b.userByRef(u)), 105_000, 250);
        await settled(r, 10_000);

        for (const uuid of uuids) expect(createsOf(r, 'B', uuid)).toBe(1);
        const deliveries = await Promise.all(uuids.map((u) => deliveryOf(r, u, 'B')));
        expect(deliveries.every((d) => d!.status === 'DELIVERED')).toBe(true);
        expect(await r.hub.prisma.deliveryAttempt.count({ where: { delivery: { clientId: r.clientId }, outcome: 'DEAD' } })).toBe(0);
        // The breaker held the queue instead of burning attempts: no delivery came near its 12.
        const failedPerDelivery = deliveries.map((d) => d!.attemptsLog.filter((a) => a.outcome === 'RETRY').length);
        expect(Math.max(...failedPerDelivery)).toBeLessThanOrEqual(6);
        const totalFailed = failedPerDelivery.reduce((a, n) => a + n, 0);
        expect(totalFailed).toBeLessThan(uuids.length * 2);
      } finally {
        await r.stop();
      }
    },
    240_000,
  );
});

describe('a partner answering 500', () => {
  const rig = withRig([{ code: 'B', receives: { delivery: { attempts: 8, backoffMs: 100 } } }]);

  it('retries and delivers; the history shows the three 500s, then the delivery', async () => {
    const r = rig();
    const b = r.partners.B.fake!;
    b.failNext(3, 500);
    const uuid = await post(r, 'err-1');
    await eventually(() => b.userByRef(uuid), 10_000);
    await settled(r);
    const d = (await deliveryOf(r, uuid, 'B'))!;
    expect(d.status).toBe('DELIVERED');
    expect(d.attemptsLog.map((a) => [a.outcome, a.httpStatus])).toEqual([
      ['RETRY', 500],
      ['RETRY', 500],
      ['RETRY', 500],
      ['DELIVERED', expect.any(Number)],
    ]);
    for (const a of d.attemptsLog.slice(0, 3)) {
      expect(a.calls).toMatch(/^createUser 500 \d+ms$/);
      expect(a.error).toContain('partner answered 500');
    }
    expect(d.attemptsLog[3].calls).toMatch(/^createUser 201 \d+ms/);
    expect(createsOf(r, 'B', uuid)).toBe(1);
  });
});

/** B answers 429 (Retry-After: 1) until it has sent `times` of them, then accepts; resolves with A's new record once B has it and the rig has settled. */
async function deliveredThroughRateLimit(r: Rig, recordID: string, times: number): Promise<string> {
  const b = r.partners.B.fake!;
  b.behaviour = { kind: 'rateLimit', retryAfterSeconds: 1 };
  const uuid = await post(r, recordID);
  await eventually(() => b.requests.filter((q) => q.status === 429).length >= times, 10_000);
  b.behaviour = { kind: 'ok' };
  await eventually(() => b.userByRef(uuid), 10_000);
  await settled(r);
  return uuid;
}

/**
 * Each call B received less than a second (the Retry-After) after a 429, described in full with the
 * 429 before it (this once failed at 4 ms under load; the pair says which calls).
 */
function callsTooSoonAfter429(r: Rig): string[] {
  const requests = r.partners.B.fake!.requests;
  const show = (q: (typeof requests)[number]) => `${q.method} ${q.path} ${q.status} key ${String(q.headers['idempotency-key'] ?? 'none')}`;
  return requests
    .slice(1)
    .map((next, i) => ({ previous: requests[i], next }))
    .filter(({ previous, next }) => previous.status === 429 && next.at - previous.at < 900)
    .map(({ previous, next }) => `${show(previous)} -> after ${next.at - previous.at} ms ${show(next)}`);
}

describe('a partner answering 429 with Retry-After', () => {
  // Two attempts only: waiting for a rate limit must not use them up.
  const rig = withRig([{ code: 'B', receives: { delivery: { attempts: 2, backoffMs: 100 } } }]);

  it('waits as told without using attempts, records RATE_LIMITED attempts, then delivers', async () => {
    const r = rig();
    const uuid = await deliveredThroughRateLimit(r, 'rl-1', 3);

    const d = (await deliveryOf(r, uuid, 'B'))!;
    expect(d.status).toBe('DELIVERED');
    const limited = d.attemptsLog.filter((a) => a.outcome === 'RATE_LIMITED');
    expect(limited.length).toBeGreaterThanOrEqual(3);
    for (const a of limited) {
      expect(a.httpStatus).toBe(429);
      expect(a.error).toContain('partner answered 429');
    }
    expect(d.attemptsLog.at(-1)!.outcome).toBe('DELIVERED');
    expect(d.attemptsLog.some((a) => a.outcome === 'DEAD' || a.outcome === 'RETRY')).toBe(false);
    expect(await r.hub.prisma.delivery.count({ where: { clientId: r.clientId, status: 'DEAD' } })).toBe(0);

    // After every 429 the next request came only after the Retry-After second.
    expect(callsTooSoonAfter429(r)).toEqual([]);
    expect(createsOf(r, 'B', uuid)).toBe(1);
  });
});

describe('a partner answering 429, with two worker processes on its queue', () => {
  const rig = withRig([{ code: 'B', receives: { delivery: { attempts: 2, backoffMs: 100 } } }]);

  it("holds both to the Retry-After: the other process's waiting fetch does not take the job straight back", async () => {
    const r = rig();
    await r.anotherEngine();
    const uuid = await deliveredThroughRateLimit(r, 'rl-two-1', 2);

    // The rate limit is the queue's, not one process's: each call after a 429 came a second later.
    expect(callsTooSoonAfter429(r)).toEqual([]);
    expect((await deliveryOf(r, uuid, 'B'))!.status).toBe('DELIVERED');
    expect(createsOf(r, 'B', uuid)).toBe(1);
  });
});

describe('a partner that does not answer', () => {
  const rig = withRig([{ code: 'B', receives: { delivery: { timeoutMs: 300, attempts: 8, backoffMs: 100 } } }]);

  it('gives up on a call after the connection timeout, retries, and delivers once the partner answers', async () => {
    const r = rig();
    const b = r.partners.B.fake!;
    b.behaviour = { kind: 'hang' };
    const uuid = await post(r, 'hang-1');
    await eventually(async () => (await deliveryOf(r, uuid, 'B'))!.attemptsLog.length >= 2, 10_000);
    b.behaviour = { kind: 'ok' };
    await eventually(() => b.userByRef(uuid), 10_000);
    await settled(r);

    const d = (await deliveryOf(r, uuid, 'B'))!;
    expect(d.status).toBe('DELIVERED');
    const retries = d.attemptsLog.slice(0, -1);
    expect(retries.length).toBeGreaterThanOrEqual(2);
    for (const a of retries) {
      expect(a).toMatchObject({ outcome: 'RETRY', httpStatus: null });
      expect(a.error).toContain('no answer within 300 ms');
      expect(a.calls).toMatch(/^createUser no answer \d+ms$/);
      expect(a.durationMs).toBeGreaterThanOrEqual(290);
      expect(a.durationMs).toBeLessThan(2_000);
    }
    expect(d.attemptsLog.at(-1)!.outcome).toBe('DELIVERED');
    // The unanswered creates were never applied; the one that was answered was applied once.
    expect(createsOf(r, 'B', uuid)).toBe(1);
  });
});
