import { CAPABILITIES, type Capability, type PartnerAdapter } from '../contract.ts';
import { referenceClient } from './client.ts';

/** Everything the reference partner API offers. */
export const REFERENCE_CAPABILITIES = [
  'createProspect', 'updateProspect', 'createMember', 'updateMember', 'createExMember', 'updateExMember',
  'listStaff', 'findStaffByEmail', 'listLeadSources', 'createLeadSource', 'updateLeadSource',
] as const satisfies readonly Capability[];

/**
 * The reference partner: a REST/JSON API with the calls seed 001 asks a
 * receiving partner for. Real installations differ in what they allow, so
 * the connection option `capabilities` may narrow the list (e.g. a partner
 * without lead-source creation).
 */
export function createReferenceAdapter(options: { capabilities?: readonly Capability[] } = {}): PartnerAdapter {
  const all: readonly Capability[] = REFERENCE_CAPABILITIES;
  const capabilities = options.capabilities ? all.filter((c) => options.capabilities!.includes(c)) : [...all];
  const has = (c: Capability) => capabilities.includes(c);
  const userCalls = has('createProspect') || has('createMember') || has('createExMember');
  return {
    name: 'reference',
    capabilities,
    createUser: userCalls ? referenceClient.createUser : undefined,
    updateUser: userCalls ? referenceClient.updateUser : undefined,
    listStaff: has('listStaff') ? referenceClient.listStaff : undefined,
    findStaffByEmail: has('findStaffByEmail') ? referenceClient.findStaffByEmail : undefined,
    listLeadSources: has('listLeadSources') ? referenceClient.listLeadSources : undefined,
    createLeadSource: has('createLeadSource') ? referenceClient.createLeadSource : undefined,
    updateLeadSource: has('updateLeadSource') ? referenceClient.updateLeadSource : undefined,
  };
}

/** Validates the `capabilities` connection option. */
export function referenceOptions(options: Record<string, unknown>): { capabilities?: Capability[] } {
  const list = options.capabilities;
  if (list === undefined) return {};
  if (!Array.isArray(list) || !list.every((c) => (CAPABILITIES as readonly string[]).includes(c))) {
    throw new Error(`options.capabilities must be a list of: ${CAPABILITIES.join(', ')}`);
  }
  return { capabilities: list as Capability[] };
}
