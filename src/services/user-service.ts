import { HubError, ValidationError } from '../errors/hub-error.ts';
import { ID_MAX, type ProviderInfo } from '../domain/fields.ts';
import { mergeFields, requiredMissing, validateFields, type FieldValues } from '../domain/record-schema.ts';
import { trialProblem, USER_SCHEMA, userTypeProblem, type UserKind } from '../domain/user-record.ts';
import { validate as isUuid } from 'uuid';
import type { PrismaClient, Prisma } from '../store/generated/client.ts';
import { findLinkedEntity, type LinkKey } from '../store/links.ts';
import type { LinkedRow, RecordStore, UserAsProvider } from '../store/record-store.ts';
import { fromColumns } from '../store/record-rows.ts';
import { newRowId } from '../store/row-ids.ts';
import type { RecordSave } from '../wire/record-codec.ts';
import { nextVersion, refuseIfStale, rejectSave, requireProviderInfo, saveWithRetries, scopeOf, type RecordScope } from './record-scope.ts';
import type { Principal, TenancyService } from './tenancy.ts';

export interface SaveOutcome {
  uuid: string;
  created: boolean;
  /** False when the save changed nothing (an identical re-send). */
  changed: boolean;
}

/** A user as the API answers it: values plus the asking provider's IDs. */
export interface UserView {
  providerInfo: ProviderInfo;
  values: FieldValues;
  leadInfo: { leadSource?: string; ownerID?: string };
}

export type UserLookup = { uuid: string } | { clientID: string; clubID: string; recordID: string };

/** Reference columns of a user; undefined in a change means "keep". */
interface References {
  leadSourceId: string | null;
  ownerId: string | null;
  pendingProviderId: string | null;
  pendingLeadSourceRef: string | null;
  pendingOwnerRef: string | null;
}

const entityTypeOf = (kind: UserKind) => (kind === 'staff' ? 'STAFF' : 'USER') as 'STAFF' | 'USER';

/**
 * Saving and fetching users (/user) and staff (/staff): upsert by the
 * provider's own IDs, partial updates, stale-update refusal, and the
 * leadInfo references translated from the provider's IDs to hub entities.
 */
export class UserService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly store: RecordStore,
    private readonly tenancy: TenancyService,
    private readonly clock: () => Date = () => new Date(),
    private readonly onChange: () => void = () => {},
  ) {}

  async save(principal: Principal, kind: UserKind, save: RecordSave): Promise<SaveOutcome> {
    const root = 'user';
    const info = requireProviderInfo(save.providerInfo, `${root}/providerInfo`);
    const scope = await scopeOf(this.tenancy, principal, { provider: info.identifier, clientID: info.clientID, clubID: info.clubID });
    const problems = validateFields(USER_SCHEMA, save.fields, false);
    const typeProblem = userTypeProblem(kind, save.fields.userType);
    if (typeProblem) problems.push(typeProblem);
    if (kind === 'staff' && save.leadInfo && Object.values(save.leadInfo).some((v) => v)) {
      problems.push('user/leadInfo does not apply to staff');
    }
    for (const [name, value] of Object.entries(save.leadInfo ?? {})) {
      if (value && value.length > ID_MAX) problems.push(`user/leadInfo/${name} must be at most ${ID_MAX} characters`);
    }
    const linkKey = { providerId: principal.providerId, entityType: entityTypeOf(kind), clubId: scope.clubId, externalId: info.recordID };
    if (problems.length) await rejectSave(this.prisma, problems, linkKey, USER_SCHEMA, save.fields);
    const references = await this.resolveReferences(principal, scope, save.leadInfo);

    // A user save that could create the record tries that first, without reading: the create answers
    // with the stored record when there is one. A new record then costs one statement instead of two,
    // an existing one the same two as reading first.
    let known: { found: LinkedRow | undefined } | undefined =
      kind === 'user' && requiredMissing(USER_SCHEMA, save.fields).length === 0 ? { found: undefined } : undefined;
    const outcome = await saveWithRetries(async () => {
      const given = known;
      known = undefined;
      const found = given ? given.found : await this.store.readByLink('user_record', linkKey);
      try {
        const round = await this.saveOnce(principal, kind, save, scope, linkKey, info.recordID, references, found);
        if (round && 'stored' in round) {
          // The record exists: merge with what the create read (or read it, when it committed too late to be seen).
          known = round.stored ? { found: round.stored } : undefined;
          return undefined;
        }
        return round;
      } catch (error) {
        // A problem found only by assuming the record is new (a trial rule of the merged values) is checked again against the stored one.
        if (given && !given.found && error instanceof ValidationError) return undefined;
        throw error;
      }
    });
    if (outcome.changed) this.onChange();
    return outcome;
  }

  /**
   * One merge-write round on the record as read (`found`); undefined when
   * another save won the race (read again), `stored` when a create found the
   * record exists.
   */
  private async saveOnce(
    principal: Principal,
    kind: UserKind,
    save: RecordSave,
    scope: RecordScope,
    linkKey: LinkKey,
    recordID: string,
    references: Awaited<ReturnType<UserService['resolveReferences']>>,
    found: LinkedRow | undefined,
  ): Promise<SaveOutcome | { stored: LinkedRow | undefined } | undefined> {
    const entityId = found?.entityId ?? newRowId();
    const stored = (found?.row ?? null) as StoredUser | null;
    const storedValues = stored ? fromColumns(USER_SCHEMA, stored) : null;
    if (!stored) {
      // The fields' formats were checked before any round; a new record must also have every required one.
      const missing = requiredMissing(USER_SCHEMA, save.fields);
      if (missing.length) throw new ValidationError(missing);
    }
    refuseIfStale(storedValues, save.fields, 'record');
    const before = stored ? referencesOf(stored) : emptyReferences();
    const after = applyReferences(before, references, principal.providerId);
    const referencesChanged = !sameReferences(before, after);
    const merged = mergeFields(USER_SCHEMA, storedValues, save.fields, { now: this.clock(), by: principal.code, referencesChanged });
    const trial = trialProblem(merged.values);
    if (trial) throw new ValidationError([trial]);
    if (stored && merged.changed.length === 0 && !referencesChanged) {
      // Same values (a re-send, or a partner echoing our own push): nothing to deliver, but a newer
      // modifiedDate is kept so an older write arriving late is refused.
      const incoming = save.fields.modifiedDate ? new Date(save.fields.modifiedDate).toISOString() : undefined;
      const newer = incoming && (!storedValues!.modifiedDate || incoming > storedValues!.modifiedDate) ? incoming : undefined;
      const still = await this.store.confirmUnchanged('user_record', entityId, { version: stored.version, modifiedDate: storedValues!.modifiedDate }, newer);
      return still ? { uuid: entityId, created: false, changed: false } : undefined;
    }
    const row = nextVersion(entityId, scope, stored, storedValues, merged.values, { ...after });
    const change = { entityType: entityTypeOf(kind), originProviderId: principal.providerId };
    let written: boolean;
    if (stored) written = await this.store.update('user_record', USER_SCHEMA, row, change);
    else if (kind === 'staff') written = await this.store.createAndResolve('user_record', USER_SCHEMA, linkKey, row, change, { kind: 'owner', ref: recordID });
    else {
      const created = await this.store.create('user_record', USER_SCHEMA, linkKey, row, change);
      if (!created.created) return { stored: created.found };
      written = true;
    }
    return written ? { uuid: entityId, created: !stored, changed: true } : undefined;
  }

  async fetch(principal: Principal, kind: UserKind, provider: string, lookup: UserLookup): Promise<UserView> {
    const entityType = entityTypeOf(kind);
    let found: UserAsProvider | undefined;
    if ('uuid' in lookup) {
      if (provider !== principal.code) throw new HubError('FORBIDDEN', `These credentials belong to provider ${principal.code}, not ${provider}`);
      found = isUuid(lookup.uuid) ? await this.store.readUserAs(principal.providerId, entityType, { id: lookup.uuid }) : undefined;
      const grants = await this.tenancy.grantsOf(principal.providerId);
      // Another tenant's record answers exactly like a missing one.
      if (!found || !grants.clubsById.has(found.row.clubId) || (found.row.userType === 'STAFF') !== (kind === 'staff')) {
        throw new HubError('RECORD_NOT_FOUND', `No ${kind} with uuid ${lookup.uuid}`);
      }
    } else {
      const scope = await scopeOf(this.tenancy, principal, { provider, clientID: lookup.clientID, clubID: lookup.clubID });
      found = await this.store.readUserAs(principal.providerId, entityType, { clubId: scope.clubId, externalId: lookup.recordID });
      if (!found) {
        throw new HubError('RECORD_NOT_FOUND', `No ${kind} with recordID '${lookup.recordID}' in club '${lookup.clubID}' of client '${lookup.clientID}'`);
      }
    }
    const user = found.row as unknown as StoredUser & { clubId: string };
    const grants = await this.tenancy.grantsOf(principal.providerId);
    const where = grants.clubsById.get(user.clubId)!;
    const leadInfo: UserView['leadInfo'] = {};
    const mine = user.pendingProviderId === principal.providerId;
    if (found.leadSource ?? (mine && user.pendingLeadSourceRef)) leadInfo.leadSource = found.leadSource ?? user.pendingLeadSourceRef!;
    if (found.ownerID ?? (mine && user.pendingOwnerRef)) leadInfo.ownerID = found.ownerID ?? user.pendingOwnerRef!;
    return {
      providerInfo: { identifier: principal.code, clientID: where.clientExternalId, clubID: where.clubExternalId, recordID: found.recordID ?? '' },
      values: fromColumns(USER_SCHEMA, user),
      leadInfo,
    };
  }

  /**
   * Translates leadInfo's provider IDs to hub entities. Seed 002: "If the
   * lead source or staff owner do not exist in the Connector, the record
   * will be rejected" — the default policy; `defer` keeps the reference
   * pending until the staff or lead source arrives.
   */
  private async resolveReferences(
    principal: Principal,
    scope: RecordScope,
    leadInfo: RecordSave['leadInfo'],
  ): Promise<Partial<Record<'leadSource' | 'ownerID', { id: string | null; pending: string | null }>>> {
    const out: Partial<Record<'leadSource' | 'ownerID', { id: string | null; pending: string | null }>> = {};
    const missing: string[] = [];
    for (const [name, entityType] of [['leadSource', 'LEAD_SOURCE'], ['ownerID', 'STAFF']] as const) {
      const ref = leadInfo?.[name];
      if (ref === undefined) continue;
      if (ref === null) {
        out[name] = { id: null, pending: null };
        continue;
      }
      const id = await findLinkedEntity(this.prisma, { providerId: principal.providerId, entityType, externalId: ref, clubId: scope.clubId, clientClubIds: scope.clientClubIds });
      if (id) out[name] = { id, pending: null };
      else if (principal.unknownReferences === 'DEFER') out[name] = { id: null, pending: ref };
      else {
        const what = name === 'leadSource' ? 'lead source' : 'staff member';
        const path = name === 'leadSource' ? '/connector/api/2011-11/leadsource' : '/connector/api/2011-11/staff';
        missing.push(`user/leadInfo/${name} '${ref}' is not a ${what} the hub knows for client '${scope.clientExternalId}'; save it through ${path} first`);
      }
    }
    if (missing.length) throw new ValidationError(missing, 'UNKNOWN_REFERENCE');
    return out;
  }
}

function emptyReferences(): References {
  return { leadSourceId: null, ownerId: null, pendingProviderId: null, pendingLeadSourceRef: null, pendingOwnerRef: null };
}

/** A user_record row as the save reads it (JSON: dates as text). */
type StoredUser = References & { version: number; [column: string]: unknown };

function referencesOf(user: References): References {
  const { leadSourceId, ownerId, pendingProviderId, pendingLeadSourceRef, pendingOwnerRef } = user;
  return { leadSourceId, ownerId, pendingProviderId, pendingLeadSourceRef, pendingOwnerRef };
}

function applyReferences(
  before: References,
  change: Partial<Record<'leadSource' | 'ownerID', { id: string | null; pending: string | null }>>,
  providerId: string,
): References {
  const next = { ...before };
  // Pending references are in one provider's ID space; another provider's
  // leadInfo replaces them rather than mixing two ID spaces on one record.
  if ((change.leadSource || change.ownerID) && before.pendingProviderId && before.pendingProviderId !== providerId) {
    next.pendingLeadSourceRef = null;
    next.pendingOwnerRef = null;
  }
  if (change.leadSource) {
    next.leadSourceId = change.leadSource.id;
    next.pendingLeadSourceRef = change.leadSource.pending;
  }
  if (change.ownerID) {
    next.ownerId = change.ownerID.id;
    next.pendingOwnerRef = change.ownerID.pending;
  }
  next.pendingProviderId = next.pendingLeadSourceRef || next.pendingOwnerRef ? (change.leadSource || change.ownerID ? providerId : before.pendingProviderId) : null;
  return next;
}

function sameReferences(a: References, b: References): boolean {
  return (Object.keys(a) as (keyof References)[]).every((k) => a[k] === b[k]);
}
