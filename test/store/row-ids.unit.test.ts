import { validate, version } from 'uuid';
import { describe, expect, it } from 'vitest';
import { newRowId } from '../../src/store/row-ids.ts';

describe('new row IDs', () => {
  it('are distinct UUIDs of version 7, each made later sorting after the ones before, many within one millisecond', () => {
    const started = Date.now();
    const ids = Array.from({ length: 20_000 }, newRowId);
    expect(ids.every((id) => validate(id) && version(id) === 7)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((id, i) => i === 0 || id > ids[i - 1])).toBe(true);
    // Fewer milliseconds than IDs: ordering within a millisecond was needed (and held).
    expect(new Set(ids.map((id) => id.slice(0, 13))).size).toBeLessThan(ids.length);
    // The time they begin with is when they were made.
    const msecs = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
    expect(msecs(ids[0])).toBeGreaterThanOrEqual(started);
    expect(msecs(ids.at(-1)!)).toBeLessThanOrEqual(Date.now() + 1);
  });

  it('carry random bits: two IDs made in the same millisecond differ beyond the counter', () => {
    const [a, b] = [newRowId(), newRowId()];
    // The last 10 hex digits (40 bits) are random in each; the counter ends before them.
    expect(a.slice(-10)).not.toBe(b.slice(-10));
  });
});
