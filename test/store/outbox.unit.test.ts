import { describe, expect, it } from 'vitest';
import { eventIdOf } from '../../src/store/outbox.ts';

describe('change event IDs', () => {
  it('are the name-based (v5) uuid of record/version in the hub namespace, the same in every release', () => {
    // A delivery retried after an upgrade must carry the idempotency key its first attempt carried.
    expect(eventIdOf('0b6c9d1e-3c1f-4b5e-9a51-2f4f2d9a7c11', 1)).toBe('8c403119-e151-5a7a-8d17-470bc4b51a5d');
    expect(eventIdOf('0b6c9d1e-3c1f-4b5e-9a51-2f4f2d9a7c11', 2)).not.toBe(eventIdOf('0b6c9d1e-3c1f-4b5e-9a51-2f4f2d9a7c11', 1));
  });
});
