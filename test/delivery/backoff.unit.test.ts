import { describe, expect, it } from 'vitest';
import { deliveryBackoff, jitteredBackoff } from '../../src/delivery/delivery-worker.ts';

/** The lowest and highest delay of many draws (the jitter is random). */
function range(draw: () => number, times = 2_000): [number, number] {
  const delays = Array.from({ length: times }, draw);
  return [Math.min(...delays), Math.max(...delays)];
}

describe('the delivery backoff', () => {
  it('doubles the delay per attempt from the base, with jitter between half and the whole of it, up to 5 minutes', () => {
    expect(range(() => jitteredBackoff(1, 1_000))).toEqual([expect.closeTo(500, -2), expect.closeTo(1_000, -2)]);
    const [low, high] = range(() => jitteredBackoff(4, 1_000));
    expect(low).toBeGreaterThanOrEqual(4_000);
    expect(high).toBeLessThanOrEqual(8_000);
    expect(high - low).toBeGreaterThan(3_000);
    expect(range(() => jitteredBackoff(30, 1_000))[1]).toBeLessThanOrEqual(5 * 60_000);
  });

  it('goes on from the attempts a bundle made before handing the delivery to a job of its own', () => {
    const backoff = deliveryBackoff(100);
    // The job's first retry after a bundle's 3 attempts waits as a fourth retry would: 400-800 ms, not 50-100.
    const [low, high] = range(() => backoff(1, 'custom', new Error('503'), { data: { deliveryId: 'd', attemptsBefore: 3 } }));
    expect(low).toBeGreaterThanOrEqual(400);
    expect(high).toBeLessThanOrEqual(800);
    // A job of its own from the start (no attemptsBefore), and BullMQ's call without the job, start from the base.
    for (const job of [{ data: { deliveryId: 'd' } }, undefined]) {
      const [first, last] = range(() => backoff(1, 'custom', undefined, job));
      expect(first).toBeGreaterThanOrEqual(50);
      expect(last).toBeLessThanOrEqual(100);
    }
  });
});
