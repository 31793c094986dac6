import { HubError, ValidationError } from '../errors/hub-error.ts';
import { checkProviderInfo, type ProviderInfo } from '../domain/fields.ts';
import { isStale, validateFields, type FieldChange, type FieldValues, type RecordSchema } from '../domain/record-schema.ts';
import type { PrismaClient } from '../store/generated/client.ts';
import type { LinkKey } from '../store/links.ts';
import type { Principal, TenancyService } from './tenancy.ts';

/** Where a record lives, in hub IDs and in the calling provider's IDs. */
export interface RecordScope {
  clientId: string;
  clubId: string;
  clientExternalId: string;
  clubExternalId: string;
  /** Every granted club of the client (references resolve client-wide). */
  clientClubIds: string[];
}

/**
 * The provider sandbox rule (seed 002 "Security: per club access"): the
 * identifier must be the authenticated provider, and the client and club
 * must be granted to it. An unknown client and another tenant's client get
 * the same answer, so nothing leaks about who else is on the hub.
 */
export async function scopeOf(
  tenancy: TenancyService,
  principal: Principal,
  ids: { provider: string; clientID: string; clubID: string },
): Promise<RecordScope> {
  if (ids.provider !== principal.code) {
    throw new HubError('FORBIDDEN', `These credentials belong to provider ${principal.code}, not ${ids.provider}`);
  }
  const grants = await tenancy.grantsOf(principal.providerId);
  const client = grants.clients.get(ids.clientID);
  const clubId = client?.clubs.get(ids.clubID);
  if (!client || !clubId) {
    throw new HubError('FORBIDDEN', `Provider ${principal.code} has no access to club '${ids.clubID}' of client '${ids.clientID}'`);
  }
  return {
    clientId: client.clientId,
    clubId,
    clientExternalId: client.externalId,
    clubExternalId: ids.clubID,
    clientClubIds: [...client.clubs.values()],
  };
}

/** Checks the four providerInfo IDs of a save and returns them typed. */
export function requireProviderInfo(info: Partial<Record<keyof ProviderInfo, string | null>>, where: string): ProviderInfo {
  const problems = checkProviderInfo(info, where);
  if (problems.length) throw new ValidationError(problems);
  return info as ProviderInfo;
}

/**
 * Throws every problem of a save at once: the format problems found, plus
 * the fields a new record would need when the record does not exist yet.
 */
export async function rejectSave(prisma: PrismaClient, problems: string[], key: LinkKey, schema: RecordSchema, fields: FieldChange): Promise<never> {
  const existing = await prisma.link.findUnique({ where: { providerId_entityType_clubId_externalId: key }, select: { id: true } });
  const all = existing ? problems : [...problems, ...validateFields(schema, fields, true).filter((p) => !problems.includes(p))];
  throw new ValidationError(all);
}

/**
 * Runs an optimistic save until it writes: a round returns undefined when
 * another save of the same record committed between its read and its
 * write, and the next round reads that newer version and merges again.
 */
export async function saveWithRetries<T>(round: () => Promise<T | undefined>, rounds = 10): Promise<T> {
  for (let i = 0; i < rounds; i++) {
    const outcome = await round();
    if (outcome !== undefined) return outcome;
  }
  throw new HubError('UNAVAILABLE', 'This record is being changed by many saves at once; retry shortly', { retryAfter: 1, detail: `no save round won in ${rounds} tries` });
}

/** Seed rule: a save older than the stored record is refused (409), naming both dates. */
export function refuseIfStale(storedValues: FieldValues | null, fields: FieldChange, noun: string): void {
  if (!isStale(storedValues, fields)) return;
  throw new HubError(
    'STALE_UPDATE',
    `The stored ${noun} was modified at ${storedValues?.modifiedDate}, after this update's modifiedDate ${new Date(fields.modifiedDate!).toISOString()}; the update was not applied`,
  );
}

/** The next version of a record as the optimistic write needs it. */
export function nextVersion(
  entityId: string,
  scope: { clientId: string; clubId: string },
  stored: { version: number } | null,
  storedValues: FieldValues | null,
  values: FieldValues,
  extra: Record<string, string | null>,
) {
  return {
    id: entityId,
    clientId: scope.clientId,
    clubId: scope.clubId,
    version: stored ? stored.version + 1 : 1,
    expectedModifiedDate: storedValues?.modifiedDate ?? null,
    values,
    extra,
  };
}
