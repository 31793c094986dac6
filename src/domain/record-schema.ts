import { checkFormat, type FieldFormat } from './fields.ts';

/**
 * A record type as data: its wire fields in the seed's order with their
 * formats. Users, staff and lead sources are three schemas over the same
 * partial-update and staleness rules below.
 */
export interface FieldSpec {
  name: string;
  format: FieldFormat;
  /** Must be present when the record is created, and cannot be cleared. */
  required?: boolean;
  /** Personal data: masked in stored error copies. */
  personal?: boolean;
}

export interface RecordSchema {
  /** Name of the element holding the fields (userInfo, leadInfo). */
  section: string;
  fields: readonly FieldSpec[];
}

/**
 * A partial update as received: absent field = keep (undefined), empty
 * element = clear (null), otherwise the new value (trimmed text).
 */
export type FieldChange = Record<string, string | null | undefined>;
/** A stored record's field values, canonical text (dates yyyy-mm-dd, timestamps ISO with ms and Z). */
export type FieldValues = Record<string, string | null>;

export const AUDIT_FIELDS = ['createdBy', 'createdDate', 'modifiedBy', 'modifiedDate'] as const;

export function validateFields(schema: RecordSchema, change: FieldChange, creating: boolean): string[] {
  const problems: string[] = [];
  for (const spec of schema.fields) {
    const value = change[spec.name];
    if (value === undefined) {
      if (creating && spec.required) problems.push(missingMessage(schema, spec));
      continue;
    }
    if (value === null) {
      if (spec.required) problems.push(`${schema.section}/${spec.name} cannot be empty`);
      continue;
    }
    const problem = checkFormat(spec.format, value);
    if (problem) problems.push(`${schema.section}/${spec.name} ${problem}`);
  }
  return problems;
}

/** The required fields a change leaves out: what a new record would lack. */
export function requiredMissing(schema: RecordSchema, change: FieldChange): string[] {
  return schema.fields.filter((spec) => spec.required && change[spec.name] === undefined).map((spec) => missingMessage(schema, spec));
}

const missingMessage = (schema: RecordSchema, spec: FieldSpec) => `${schema.section}/${spec.name} is required for a new record`;

/** Canonical stored text for a validated value (timestamps normalised to UTC ms). */
export function canonicalValue(format: FieldFormat, value: string): string {
  return format.kind === 'timestamp' ? new Date(value).toISOString() : value;
}

export interface MergeResult {
  values: FieldValues;
  /** Names of fields whose value differs from before (empty: nothing to store or deliver). */
  changed: string[];
}

/**
 * Applies a partial update. The hub fills the audit fields the partner left
 * out: createdDate/createdBy on creation, modifiedDate/modifiedBy whenever a
 * field really changed, so an identical re-send changes nothing.
 */
export function mergeFields(
  schema: RecordSchema,
  stored: FieldValues | null,
  change: FieldChange,
  context: { now: Date; by: string; referencesChanged?: boolean },
): MergeResult {
  const values: FieldValues = {};
  const changed: string[] = [];
  for (const spec of schema.fields) {
    const before = stored?.[spec.name] ?? null;
    const incoming = change[spec.name];
    const after = incoming === undefined ? before : incoming === null ? null : canonicalValue(spec.format, incoming);
    values[spec.name] = after;
    if (after !== before && !(AUDIT_FIELDS as readonly string[]).includes(spec.name)) changed.push(spec.name);
  }
  const now = context.now.toISOString();
  if (stored === null) {
    values.createdDate ??= now;
    values.createdBy ??= context.by;
  }
  if (stored === null || changed.length > 0 || context.referencesChanged) {
    if (change.modifiedDate === undefined || change.modifiedDate === null) values.modifiedDate = now;
    if (change.modifiedBy === undefined) values.modifiedBy = context.by;
  } else {
    // Nothing but audit fields differ: keep the stored audit trail as it is.
    for (const name of AUDIT_FIELDS) values[name] = stored[name] ?? null;
  }
  return { values, changed };
}

/**
 * Seed rule (issue 2): an update whose modifiedDate is older than the stored
 * one must not overwrite newer data. Equal dates are a re-send, not stale.
 */
export function isStale(stored: FieldValues | null, change: FieldChange): boolean {
  const incoming = change.modifiedDate;
  const current = stored?.modifiedDate;
  if (!incoming || !current) return false;
  return Date.parse(incoming) < Date.parse(current);
}
