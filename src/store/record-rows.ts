import type { FieldValues, RecordSchema } from '../domain/record-schema.ts';

/**
 * Domain field values (canonical text) <-> Prisma column values. Dates are
 * stored as PostgreSQL DATE (UTC midnight), timestamps as timestamptz(3).
 */
export function toColumns(schema: RecordSchema, values: FieldValues): Record<string, unknown> {
  const data: Record<string, unknown> = {};
  for (const spec of schema.fields) {
    const value = values[spec.name];
    if (value === null || value === undefined) data[spec.name] = null;
    else if (spec.format.kind === 'date') data[spec.name] = new Date(`${value}T00:00:00.000Z`);
    else if (spec.format.kind === 'timestamp') data[spec.name] = new Date(value);
    else if (spec.format.kind === 'boolean') data[spec.name] = value === 'true';
    else data[spec.name] = value;
  }
  return data;
}

export function fromColumns(schema: RecordSchema, row: Record<string, unknown>): FieldValues {
  const values: FieldValues = {};
  for (const spec of schema.fields) {
    const value = row[spec.name];
    if (value === null || value === undefined) values[spec.name] = null;
    else if (value instanceof Date) {
      values[spec.name] = spec.format.kind === 'date' ? value.toISOString().slice(0, 10) : value.toISOString();
    } else if (spec.format.kind === 'timestamp') {
      // Raw SQL and JSON rows carry timestamps as text ("2012-04-10T04:11:07.023+00:00").
      values[spec.name] = new Date(String(value)).toISOString();
    } else values[spec.name] = String(value);
  }
  return values;
}
