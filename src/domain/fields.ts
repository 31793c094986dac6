import { ISO_COUNTRIES } from './countries.ts';

/**
 * Field rules shared by every record type: each wire field is declared as
 * data (its format and length), so validation, the README's field table and
 * the property tests all read the same list.
 */
export type FieldFormat =
  | { kind: 'text'; max: number }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'date' }
  | { kind: 'timestamp' }
  | { kind: 'email' }
  | { kind: 'phone' }
  | { kind: 'country' }
  | { kind: 'boolean' };

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
// Pragmatic shape check (RFC 5322 is far wider than any partner's form).
const EMAIL = /^[^\s@<>()[\],;:"]+@[^\s@<>()[\],;:"]+\.[^\s@<>()[\],;:"]{2,}$/;
const PHONE = /^[0-9+()\-. /x#*]{3,40}$/i;
// ISO 8601 timestamp with a zone (Z or ±hh:mm), seconds and fraction optional.
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

/** Returns a problem sentence, or undefined when the value is valid. */
export function checkFormat(format: FieldFormat, value: string): string | undefined {
  switch (format.kind) {
    case 'text':
      if (value.length > format.max) return `must be at most ${format.max} characters`;
      // Control characters other than tab/newline would corrupt partner exports.
      if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(value)) return 'must not contain control characters';
      return undefined;
    case 'enum':
      return format.values.includes(value) ? undefined : `must be one of ${format.values.join(', ')}`;
    case 'date':
      return isCalendarDate(value) ? undefined : 'must be a date in the form yyyy-mm-dd';
    case 'timestamp':
      return TIMESTAMP.test(value) && !Number.isNaN(Date.parse(value))
        ? undefined
        : 'must be an ISO 8601 timestamp with a time zone, e.g. 2012-04-10T04:11:07.023Z';
    case 'email':
      return value.length <= 254 && EMAIL.test(value) ? undefined : 'must be an email address like name@example.com';
    case 'phone':
      return PHONE.test(value) ? undefined : 'must be a phone number of 3 to 40 digits, spaces and + ( ) - . / x # *';
    case 'country':
      return ISO_COUNTRIES.has(value) ? undefined : 'must be an ISO 3166-1 alpha-2 country code in capitals, e.g. US';
    case 'boolean':
      return value === 'true' || value === 'false' ? undefined : 'must be true or false';
  }
}

export function isCalendarDate(value: string): boolean {
  const m = DATE.exec(value);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(y, mo - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && y >= 1800;
}

/** The four IDs every call carries (seed 002: provider, client, club, record). */
export const PROVIDER_INFO_FIELDS = ['identifier', 'clientID', 'clubID', 'recordID'] as const;
export type ProviderInfo = Record<(typeof PROVIDER_INFO_FIELDS)[number], string>;
export const ID_MAX = 100;

export function checkProviderInfo(info: Partial<Record<string, string | null>>, where = 'providerInfo'): string[] {
  const problems: string[] = [];
  for (const field of PROVIDER_INFO_FIELDS) {
    const value = info[field];
    if (value === undefined || value === null || value === '') problems.push(`${where}/${field} is required`);
    else if (value.length > ID_MAX) problems.push(`${where}/${field} must be at most ${ID_MAX} characters`);
    else if (/[\u0000-\u001f\u007f]/.test(value)) problems.push(`${where}/${field} must not contain control characters`);
  }
  return problems;
}
