import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkFormat, isCalendarDate } from '../../src/domain/fields.ts';
import { isStale, mergeFields, validateFields } from '../../src/domain/record-schema.ts';
import { USER_SCHEMA } from '../../src/domain/user-record.ts';

const now = new Date('2026-01-01T00:00:00.000Z');
const ctx = { now, by: 'P' };

describe('field formats', () => {
  it('accepts real calendar dates only', () => {
    expect(isCalendarDate('1972-03-12')).toBe(true);
    expect(isCalendarDate('2024-02-29')).toBe(true);
    expect(isCalendarDate('2023-02-29')).toBe(false);
    expect(isCalendarDate('1972-3-12')).toBe(false);
    expect(isCalendarDate('12/03/1972')).toBe(false);
  });

  it('says what is wrong in words a partner engineer understands', () => {
    expect(checkFormat({ kind: 'country' }, 'USA')).toContain('ISO 3166-1 alpha-2');
    expect(checkFormat({ kind: 'country' }, 'US')).toBeUndefined();
    expect(checkFormat({ kind: 'email' }, 'foo@bar.com')).toBeUndefined();
    expect(checkFormat({ kind: 'email' }, 'foo@bar')).toContain('email address');
    expect(checkFormat({ kind: 'timestamp' }, '2012-04-10T04:11:07.023Z')).toBeUndefined();
    expect(checkFormat({ kind: 'timestamp' }, '2012-04-10 04:11')).toContain('ISO 8601');
    expect(checkFormat({ kind: 'text', max: 3 }, 'abcd')).toBe('must be at most 3 characters');
    expect(checkFormat({ kind: 'text', max: 9 }, 'a\u0001b')).toContain('control characters');
  });
});

describe('partial updates', () => {
  const created = mergeFields(USER_SCHEMA, null, { firstname: 'Pete', userType: 'PROSPECT', userStatus: 'ACTIVE', city: 'X' }, ctx).values;

  it('fills the audit fields of a new record from the provider and the clock', () => {
    expect(created).toMatchObject({ createdBy: 'P', modifiedBy: 'P', createdDate: now.toISOString(), modifiedDate: now.toISOString() });
  });

  it('keeps absent fields, clears null ones, and reports exactly what changed', () => {
    const later = { now: new Date('2026-02-01T00:00:00.000Z'), by: 'Q' };
    const { values, changed } = mergeFields(USER_SCHEMA, created, { city: null, lastname: 'P' }, later);
    expect(values.firstname).toBe('Pete');
    expect(values.city).toBeNull();
    expect(changed.sort()).toEqual(['city', 'lastname']);
    expect(values.modifiedBy).toBe('Q');
    expect(values.createdBy).toBe('P');
  });

  it('changes nothing, audit fields included, when every sent value is already stored', () => {
    fc.assert(
      fc.property(fc.subarray(['firstname', 'userType', 'userStatus', 'city'] as const), (names) => {
        const change = Object.fromEntries(names.map((n) => [n, created[n]]));
        const { values, changed } = mergeFields(USER_SCHEMA, created, { ...change, modifiedBy: 'other' }, { now: new Date(), by: 'Z' });
        expect(changed).toEqual([]);
        expect(values).toEqual(created);
      }),
    );
  });

  it('requires userType and userStatus on creation only, and never lets them be cleared', () => {
    expect(validateFields(USER_SCHEMA, { firstname: 'x' }, true)).toEqual([
      'userInfo/userStatus is required for a new record',
      'userInfo/userType is required for a new record',
    ]);
    expect(validateFields(USER_SCHEMA, { firstname: 'x' }, false)).toEqual([]);
    expect(validateFields(USER_SCHEMA, { userType: null }, false)).toEqual(['userInfo/userType cannot be empty']);
  });
});

describe('staleness', () => {
  it('is an older modifiedDate than the stored one, compared as instants', () => {
    const stored = { modifiedDate: '2024-05-02T10:00:00.000Z' };
    expect(isStale(stored, { modifiedDate: '2024-05-02T09:59:59.999Z' })).toBe(true);
    expect(isStale(stored, { modifiedDate: '2024-05-02T12:00:00+02:00' })).toBe(false);
    expect(isStale(stored, { modifiedDate: '2024-05-03T00:00:00Z' })).toBe(false);
    expect(isStale(stored, {})).toBe(false);
    expect(isStale(null, { modifiedDate: '2000-01-01T00:00:00Z' })).toBe(false);
  });
});
