import type { RecordSchema } from './record-schema.ts';

export const USER_TYPES = ['PROSPECT', 'MEMBER', 'EX_MEMBER', 'STAFF'] as const;
export type UserType = (typeof USER_TYPES)[number];
export const USER_STATUSES = ['ACTIVE', 'INACTIVE'] as const;
/** M male, F female, X non-binary, U unknown / not given. */
export const GENDERS = ['M', 'F', 'X', 'U'] as const;

/** <userInfo>, in the order of the seed's fetch sample (002_…), trial dates after company. */
export const USER_SCHEMA: RecordSchema = {
  section: 'userInfo',
  fields: [
    { name: 'firstname', format: { kind: 'text', max: 100 }, personal: true },
    { name: 'lastname', format: { kind: 'text', max: 100 }, personal: true },
    { name: 'birthdate', format: { kind: 'date' }, personal: true },
    { name: 'gender', format: { kind: 'enum', values: GENDERS }, personal: true },
    { name: 'userStatus', format: { kind: 'enum', values: USER_STATUSES }, required: true },
    { name: 'userType', format: { kind: 'enum', values: USER_TYPES }, required: true },
    { name: 'address1', format: { kind: 'text', max: 200 }, personal: true },
    { name: 'address2', format: { kind: 'text', max: 200 }, personal: true },
    { name: 'city', format: { kind: 'text', max: 100 }, personal: true },
    { name: 'zipcode', format: { kind: 'text', max: 20 }, personal: true },
    { name: 'state', format: { kind: 'text', max: 100 }, personal: true },
    { name: 'country', format: { kind: 'country' } },
    { name: 'mobile', format: { kind: 'phone' }, personal: true },
    { name: 'email', format: { kind: 'email' }, personal: true },
    { name: 'homePhone', format: { kind: 'phone' }, personal: true },
    { name: 'workPhone', format: { kind: 'phone' }, personal: true },
    { name: 'company', format: { kind: 'text', max: 200 } },
    { name: 'trialStartDate', format: { kind: 'date' } },
    { name: 'trialEndDate', format: { kind: 'date' } },
    { name: 'createdBy', format: { kind: 'text', max: 100 } },
    { name: 'createdDate', format: { kind: 'timestamp' } },
    { name: 'modifiedBy', format: { kind: 'text', max: 100 } },
    { name: 'modifiedDate', format: { kind: 'timestamp' } },
  ],
};

/** <leadInfo> of a user: the sending provider's own lead-source and staff IDs. */
export const LEAD_INFO_FIELDS = ['leadSource', 'ownerID'] as const;
export type LeadReference = (typeof LEAD_INFO_FIELDS)[number];

/** Which user types each path accepts (seed 002: /staff is /user with userType STAFF). */
export type UserKind = 'user' | 'staff';

export function userTypeProblem(kind: UserKind, userType: string | null | undefined): string | undefined {
  if (userType === undefined || userType === null) return undefined;
  if (kind === 'staff' && userType !== 'STAFF') return 'userInfo/userType must be STAFF on /staff';
  if (kind === 'user' && userType === 'STAFF') return 'userInfo/userType STAFF is saved through /connector/api/2011-11/staff';
  return undefined;
}

/** Trial dates only make sense in order. */
export function trialProblem(values: Record<string, string | null>): string | undefined {
  const { trialStartDate, trialEndDate } = values;
  if (trialStartDate && trialEndDate && trialEndDate < trialStartDate) {
    return 'userInfo/trialEndDate must not be before userInfo/trialStartDate';
  }
  return undefined;
}
