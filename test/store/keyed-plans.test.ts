import { describe, expect, inject, it } from 'vitest';
import { DeliveryStore } from '../../src/delivery/delivery-store.ts';
import { RecordStore } from '../../src/store/record-store.ts';

// PostgreSQL only: PGlite serves every connection from one session, which takes no session options.
describe.runIf(inject('databaseKind') === 'postgres')('the plain-SQL stores on PostgreSQL', () => {
  it('plan by key whatever the statistics say: no sequential scans, one plan for every batch size', async () => {
    const saves = RecordStore.open(inject('databaseUrl'), 1);
    const deliveries = new DeliveryStore(inject('databaseUrl'), 1);
    try {
      // A never-analyzed table looks empty to the planner; a scan of it per save grows with every row.
      for (const pool of [saves.pool, deliveries.pool]) {
        const { rows } = await pool.query(`SELECT current_setting('enable_seqscan') AS seqscan, current_setting('plan_cache_mode') AS plans`);
        expect(rows).toEqual([{ seqscan: 'off', plans: 'force_generic_plan' }]);
      }
    } finally {
      await saves.close();
      await deliveries.close();
    }
  });
});
