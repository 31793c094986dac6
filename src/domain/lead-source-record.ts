import type { RecordSchema } from './record-schema.ts';

/** <leadInfo> of a lead source (seed 002 "Save Lead Source"), with the fetch sample's audit fields. */
export const LEAD_SOURCE_SCHEMA: RecordSchema = {
  section: 'leadInfo',
  fields: [
    { name: 'createdBy', format: { kind: 'text', max: 100 } },
    { name: 'createdDate', format: { kind: 'timestamp' } },
    { name: 'modifiedBy', format: { kind: 'text', max: 100 } },
    { name: 'modifiedDate', format: { kind: 'timestamp' } },
    { name: 'name', format: { kind: 'text', max: 200 }, required: true },
    { name: 'active', format: { kind: 'boolean' } },
  ],
};
