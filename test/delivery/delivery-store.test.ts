import { randomUUID } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { DeliveryStore } from '../../src/delivery/delivery-store.ts';

describe('the delivery store’s pool', () => {
  it('a relay run that cannot get a connection fails after the wait instead of waiting for ever, and the next run works', async () => {
    // One connection, taken, and a wait of 300 ms instead of POOL_WAIT_MS.
    const store = new DeliveryStore(inject('databaseUrl'), 1, inject('databaseKind') === 'pglite', 300);
    try {
      const held = await store.pool.connect();
      const started = performance.now();
      try {
        await expect(store.relayEvents(10, [randomUUID()], () => [])).rejects.toThrow(/timeout exceeded when trying to connect/);
        await expect(store.claim(randomUUID(), 'a-job')).rejects.toThrow(/timeout exceeded when trying to connect/);
      } finally {
        held.release();
      }
      // Two waits of 300 ms, not of POOL_WAIT_MS.
      const waited = performance.now() - started;
      expect(waited).toBeGreaterThanOrEqual(590);
      expect(waited).toBeLessThan(5_000);
      expect(await store.relayEvents(10, [randomUUID()], () => [])).toEqual({ events: 0, deliveries: [] });
      expect(await store.claim(randomUUID(), 'a-job')).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});
