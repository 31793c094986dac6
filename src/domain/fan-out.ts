import type { Agreement } from '../turnup/turnup-schema.ts';
import { userDeliveryMode, type Capability, type ReceivableUserType } from '../../adapters/contract.ts';

export type EntityKind = 'USER' | 'STAFF' | 'LEAD_SOURCE';

/**
 * Does this receiving provider want this change? The integration agreement
 * (seed 003 "Integration Options") and the adapter's declared capabilities
 * (seed 001 "Requirements") together decide; the provider the change came
 * from never gets it back.
 */
export function wantsChange(
  target: { providerId: string; agreement: Agreement; capabilities: readonly Capability[] },
  change: { entityType: EntityKind; originProviderId: string | null; userType?: string },
): boolean {
  if (change.originProviderId === target.providerId) return false;
  if (target.agreement.direction === 'send') return false;
  const can = (c: Capability) => target.capabilities.includes(c);
  switch (change.entityType) {
    case 'USER': {
      const type = change.userType as ReceivableUserType | undefined;
      if (!type || !target.agreement.userTypes.includes(type)) return false;
      return userDeliveryMode(target.capabilities, type) !== undefined;
    }
    case 'STAFF':
      // Staff are never created in a partner (seed 001); they are matched, which needs a staff lookup.
      return target.agreement.prospects.staffOwner && (can('listStaff') || can('findStaffByEmail'));
    case 'LEAD_SOURCE':
      return target.agreement.prospects.leadSource && (can('listLeadSources') || can('findLeadSourceByName') || can('createLeadSource'));
  }
}

/** Staff emails match case-insensitively and ignoring surrounding spaces (seed 001). */
export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** Lead sources match by name, case-insensitively (seed 002). */
export function normaliseName(name: string): string {
  return name.trim().toLowerCase();
}
