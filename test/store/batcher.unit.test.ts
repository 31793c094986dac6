import { describe, expect, it } from 'vitest';
import { Batcher } from '../../src/store/batcher.ts';
import { cached } from '../../src/services/tenancy.ts';

const turn = () => new Promise((r) => setImmediate(r));

/** A batcher over a fake statement that records what each round trip carried. */
function recording(
  options: {
    failBatchesWith?: (items: string[]) => boolean;
    failOne?: (item: string) => boolean;
    keyOf?: (item: string) => string;
    oneByOneAfter?: (error: unknown) => boolean;
    maxInFlight?: number;
    maxBatch?: number;
    spareLaneAfterMs?: number;
  } = {},
) {
  const batches: string[][] = [];
  const singles: string[] = [];
  const held: (() => void)[] = [];
  const gate = { hold: false };
  const batcher = new Batcher<string, string>({
    async many(items) {
      batches.push(items);
      if (gate.hold) await new Promise<void>((r) => held.push(r));
      if (options.failBatchesWith?.(items)) throw new Error('batch refused');
      return items.map((i) => i.toUpperCase());
    },
    async one(item) {
      singles.push(item);
      if (options.failOne?.(item)) throw new Error(`refused ${item}`);
      return item.toUpperCase();
    },
    keyOf: options.keyOf,
    oneByOneAfter: options.oneByOneAfter,
    maxInFlight: options.maxInFlight,
    maxBatch: options.maxBatch,
    spareLaneAfterMs: options.spareLaneAfterMs,
  });
  /** Lets every held batch return. */
  const release = () => held.splice(0).forEach((r) => r());
  /** Lets the held batch of this index (in the order they were held) return. */
  const releaseOne = (index: number) => held.splice(index, 1)[0]();
  return { batcher, batches, singles, gate, release, releaseOne };
}

describe('Batcher (group commit)', () => {
  it('runs the calls of one event-loop turn as one batch and answers each in order', async () => {
    const { batcher, batches } = recording();
    const answers = await Promise.all(['a', 'b', 'c'].map((x) => batcher.run(x)));
    expect(answers).toEqual(['A', 'B', 'C']);
    expect(batches).toEqual([['a', 'b', 'c']]);
  });

  it('runs a lone call on its own, without a batch', async () => {
    const { batcher, batches, singles } = recording();
    expect(await batcher.run('x')).toBe('X');
    expect(batches).toEqual([]);
    expect(singles).toEqual(['x']);
  });

  it('never puts two calls with the same key in one batch', async () => {
    const { batcher, batches, singles } = recording({ keyOf: (x) => x[0] });
    const answers = await Promise.all(['a1', 'b1', 'a2', 'c1', 'a3'].map((x) => batcher.run(x)));
    expect(answers).toEqual(['A1', 'B1', 'A2', 'C1', 'A3']);
    // a1, a2 and a3 go out one after another, in arrival order.
    const rounds = [...batches, ...singles.map((s) => [s])];
    expect(rounds.map((r) => r.filter((x) => x.startsWith('a')))).toEqual([['a1'], ['a2'], ['a3']]);
    for (const round of rounds) expect(new Set(round.map((x) => x[0])).size).toBe(round.length);
  });

  it('holds a call back while its key is in a batch that is out, and lets other keys pass', async () => {
    const { batcher, batches, singles, gate, release } = recording({ keyOf: (x) => x[0] });
    gate.hold = true;
    const first = Promise.all(['a1', 'b1'].map((x) => batcher.run(x)));
    await new Promise((r) => setImmediate(r));
    const a2 = batcher.run('a2');
    const c1 = batcher.run('c1');
    expect(await c1).toBe('C1');
    // c1 went out on its own while a2 waited for a1's batch.
    expect(singles).toEqual(['c1']);
    expect(batches).toEqual([['a1', 'b1']]);
    gate.hold = false;
    release();
    expect(await first).toEqual(['A1', 'B1']);
    expect(await a2).toBe('A2');
    expect(singles).toEqual(['c1', 'a2']);
  });

  it('fails every call of a batch when the failure is not a row\'s (the database is gone)', async () => {
    const { batcher, singles } = recording({ failBatchesWith: () => true, oneByOneAfter: () => false });
    const results = await Promise.allSettled(['a', 'b', 'c'].map((x) => batcher.run(x)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(singles).toEqual([]);
  });

  it('runs the calls of a batch that failed for a row one by one, so only the bad one fails', async () => {
    const { batcher, singles } = recording({ failBatchesWith: (items) => items.includes('bad'), failOne: (x) => x === 'bad', oneByOneAfter: () => true });
    const results = await Promise.allSettled(['a', 'bad', 'c'].map((x) => batcher.run(x)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('refused bad');
    expect(results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<string>).value)).toEqual(['A', 'C']);
    expect(singles.sort()).toEqual(['a', 'bad', 'c']);
  });

  it('gathers calls for the next batch while the limit of batches is out', async () => {
    const { batcher, batches, gate, release } = recording({ maxInFlight: 1 });
    gate.hold = true;
    const first = Promise.all(['a', 'b'].map((x) => batcher.run(x)));
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([['a', 'b']]);
    const later: Promise<string>[] = [];
    for (const x of ['c', 'd', 'e']) {
      later.push(batcher.run(x));
      await new Promise((r) => setImmediate(r));
    }
    // c, d and e arrived on three different turns, all while a-b was out: they wait together.
    expect(batches).toHaveLength(1);
    gate.hold = false;
    release();
    expect(await first).toEqual(['A', 'B']);
    expect(await Promise.all(later)).toEqual(['C', 'D', 'E']);
    expect(batches).toEqual([['a', 'b'], ['c', 'd', 'e']]);
  });

  it('gathers the calls of later turns while a batch is out, and sends them together when it returns', async () => {
    const { batcher, batches, singles, gate, release } = recording();
    gate.hold = true;
    const first = Promise.all(['a', 'b'].map((x) => batcher.run(x)));
    await turn();
    const later: Promise<string>[] = [];
    for (const x of ['c', 'd', 'e']) {
      later.push(batcher.run(x));
      await turn();
    }
    // Lanes are free (four by default), but none of c, d and e left on its own.
    expect(batches).toEqual([['a', 'b']]);
    expect(singles).toEqual([]);
    gate.hold = false;
    release();
    expect(await Promise.all(later)).toEqual(['C', 'D', 'E']);
    expect(await first).toEqual(['A', 'B']);
    expect(batches).toEqual([['a', 'b'], ['c', 'd', 'e']]);
  });

  it('sends the waiting calls beside a batch that has been out for spareLaneAfterMs', async () => {
    const { batcher, batches, singles, gate, release } = recording({ spareLaneAfterMs: 30 });
    gate.hold = true;
    const stuck = Promise.all(['a', 'b'].map((x) => batcher.run(x)));
    await turn();
    const leftAt = performance.now();
    const c = batcher.run('c');
    await turn();
    expect(singles).toEqual([]);
    // a-b never returns while c waits: c leaves on a lane of its own once a-b has been out 30 ms.
    expect(await c).toBe('C');
    expect(performance.now() - leftAt).toBeGreaterThanOrEqual(25);
    expect(singles).toEqual(['c']);
    expect(batches).toEqual([['a', 'b']]);
    gate.hold = false;
    release();
    expect(await stuck).toEqual(['A', 'B']);
  });

  it('when the younger of two batches out returns, the waiting calls wait for the older one only: until it has been out spareLaneAfterMs', async () => {
    const { batcher, batches, singles, gate, release, releaseOne } = recording({ spareLaneAfterMs: 200, maxBatch: 2 });
    gate.hold = true;
    const answers = [Promise.all(['a', 'b'].map((x) => batcher.run(x)))];
    await turn();
    const olderLeft = performance.now();
    await new Promise((r) => setTimeout(r, 100));
    // A full batch leaves beside a-b at once, 100 ms after it.
    answers.push(Promise.all(['c', 'd'].map((x) => batcher.run(x))));
    await turn();
    await turn();
    expect(batches).toEqual([['a', 'b'], ['c', 'd']]);
    // e waits to gather: until c-d returns, or both have been out 200 ms (300 ms after a-b left).
    const e = batcher.run('e');
    await turn();
    await new Promise((r) => setTimeout(r, 10));
    // c-d returns; a-b is still out: e leaves once a-b has been out 200 ms, not 300.
    releaseOne(1);
    expect(await e).toBe('E');
    const waited = performance.now() - olderLeft;
    expect(singles).toEqual(['e']);
    expect(waited).toBeGreaterThanOrEqual(190);
    expect(waited).toBeLessThan(270);
    gate.hold = false;
    release();
    expect(await Promise.all(answers)).toEqual([['A', 'B'], ['C', 'D']]);
  });

  it('sends a full batch at once beside one that is out', async () => {
    const { batcher, batches, gate, release } = recording({ maxBatch: 2 });
    gate.hold = true;
    const first = Promise.all(['a', 'b'].map((x) => batcher.run(x)));
    await turn();
    const second = Promise.all(['c', 'd'].map((x) => batcher.run(x)));
    await turn();
    // Gathering could not make c-d larger: it did not wait for a-b.
    expect(batches).toEqual([['a', 'b'], ['c', 'd']]);
    gate.hold = false;
    release();
    expect([...(await first), ...(await second)]).toEqual(['A', 'B', 'C', 'D']);
  });

  it('caps a batch at maxBatch calls', async () => {
    const { batcher, batches, singles } = recording({ maxBatch: 2 });
    expect(await Promise.all(['a', 'b', 'c', 'd', 'e'].map((x) => batcher.run(x)))).toEqual(['A', 'B', 'C', 'D', 'E']);
    expect(batches).toEqual([['a', 'b'], ['c', 'd']]);
    expect(singles).toEqual(['e']);
  });
});

describe('credential and grant cache', () => {
  it('lets the requests that miss together wait for one load', async () => {
    const entries = new Map();
    let loads = 0;
    const load = async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 10));
      return 'principal';
    };
    const answers = await Promise.all(Array.from({ length: 50 }, () => cached(entries, 'k', 60_000, load)));
    expect(answers.every((a) => a === 'principal')).toBe(true);
    expect(loads).toBe(1);
    await cached(entries, 'k', 60_000, load);
    expect(loads).toBe(1);
  });

  it('keeps neither a refusal nor a failure, and loads again after the time to live', async () => {
    const entries = new Map();
    let loads = 0;
    const answers: (string | null)[] = [null, 'late-added'];
    const refusedThenKnown = async () => answers[loads++];
    expect(await cached(entries, 'k', 60_000, refusedThenKnown)).toBeNull();
    expect(await cached(entries, 'k', 60_000, refusedThenKnown)).toBe('late-added');

    const failing = async () => {
      throw new Error('database away');
    };
    await expect(cached(entries, 'f', 60_000, failing)).rejects.toThrow('database away');
    await new Promise((r) => setImmediate(r));
    expect(await cached(entries, 'f', 60_000, async () => 'back')).toBe('back');

    let expiring = 0;
    await cached(entries, 'e', 0, async () => ++expiring);
    await new Promise((r) => setTimeout(r, 2));
    expect(await cached(entries, 'e', 0, async () => ++expiring)).toBe(2);
  });
});
