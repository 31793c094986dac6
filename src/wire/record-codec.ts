import { HubError } from '../errors/hub-error.ts';
import { PROVIDER_INFO_FIELDS, type ProviderInfo } from '../domain/fields.ts';
import type { FieldChange, RecordSchema } from '../domain/record-schema.ts';
import { LEAD_INFO_FIELDS } from '../domain/user-record.ts';
import { rootElement, type WireDocument, type WireFormat } from './document.ts';
import { API_NAMESPACE, fieldElements, type OutElement } from './render.ts';

/**
 * Wire shape <-> request/answer objects for the three record paths. Only the
 * structure is checked here (which elements may appear where); values are
 * checked by the domain rules.
 */
export interface RecordSave {
  /** Raw providerInfo values (presence and length checked by the domain). */
  providerInfo: Partial<Record<keyof ProviderInfo, string | null>>;
  fields: FieldChange;
  /** Users only: the sending provider's lead-source and staff IDs. */
  leadInfo?: Partial<Record<'leadSource' | 'ownerID', string | null>>;
}

const invalid = (message: string) => new HubError('INVALID_RECORD', message);

function section(parent: WireDocument, name: string, where: string): WireDocument | null | undefined {
  const value = parent[name];
  if (value === undefined || value === null) return value;
  if (typeof value === 'string') throw invalid(`<${where}/${name}> must contain elements, not text`);
  return value;
}

function textFields(node: WireDocument, allowed: readonly string[], where: string): FieldChange {
  const out: FieldChange = {};
  for (const [name, value] of Object.entries(node)) {
    if (!allowed.includes(name)) {
      throw invalid(`Unknown element <${where}/${name}>; <${where}> may contain ${allowed.map((a) => `<${a}>`).join(', ')}`);
    }
    if (value !== null && typeof value !== 'string') throw invalid(`<${where}/${name}> must hold text, not elements`);
    out[name] = value;
  }
  return out;
}

function checkChildren(node: WireDocument, allowed: readonly string[], where: string): void {
  for (const name of Object.keys(node)) {
    if (!allowed.includes(name)) {
      throw invalid(`Unknown element <${where}/${name}>; <${where}> may contain ${allowed.map((a) => `<${a}>`).join(', ')}`);
    }
  }
}

/** Reads `<user>` / `<leadSource>`: providerInfo plus the record's section. */
export function readRecordSave(
  doc: WireDocument,
  format: WireFormat,
  root: 'user' | 'leadSource',
  schema: RecordSchema,
): RecordSave {
  const body = rootElement(doc, root, format);
  const sections = root === 'user' ? ['providerInfo', 'userInfo', 'leadInfo'] : ['providerInfo', 'leadInfo'];
  checkChildren(body, sections, root);
  const info = section(body, 'providerInfo', root);
  if (!info) throw invalid(`<${root}/providerInfo> is required`);
  const providerInfo = textFields(info, PROVIDER_INFO_FIELDS, `${root}/providerInfo`);
  const fieldNames = schema.fields.map((f) => f.name);
  const fieldsNode = section(body, schema.section, root);
  const fields = fieldsNode ? textFields(fieldsNode, fieldNames, `${root}/${schema.section}`) : {};
  if (fieldsNode === undefined) throw invalid(`<${root}/${schema.section}> is required`);
  const save: RecordSave = { providerInfo, fields };
  if (root === 'user') {
    const lead = section(body, 'leadInfo', root);
    if (lead) save.leadInfo = textFields(lead, LEAD_INFO_FIELDS, 'user/leadInfo');
    // An empty <leadInfo/> clears both references.
    else if (lead === null) save.leadInfo = { leadSource: null, ownerID: null };
  }
  return save;
}

export function providerInfoElement(info: ProviderInfo): OutElement {
  return { name: 'providerInfo', children: fieldElements(PROVIDER_INFO_FIELDS, info) };
}

/** The seed's save answer: <response xmlns=…><uuid>…</uuid></response>. */
export function savedResponse(uuid: string): OutElement {
  return { name: 'response', xmlns: API_NAMESPACE, children: [{ name: 'uuid', text: uuid }] };
}

/** The seed's error envelope. */
export function errorEnvelope(reason: string, errorUUID: string, message: string): OutElement {
  return {
    name: 'error',
    xmlns: API_NAMESPACE,
    children: [
      { name: 'reason', text: reason },
      { name: 'errorUUID', text: errorUUID },
      { name: 'message', text: message },
    ],
  };
}
