import { HubError, ValidationError } from '../errors/hub-error.ts';
import type { ProviderInfo } from '../domain/fields.ts';
import { LEAD_SOURCE_SCHEMA } from '../domain/lead-source-record.ts';
import { mergeFields, validateFields, type FieldValues } from '../domain/record-schema.ts';
import type { PrismaClient } from '../store/generated/client.ts';
import type { RecordStore } from '../store/record-store.ts';
import { fromColumns } from '../store/record-rows.ts';
import { newRowId } from '../store/row-ids.ts';
import type { RecordSave } from '../wire/record-codec.ts';
import { nextVersion, refuseIfStale, rejectSave, requireProviderInfo, saveWithRetries, scopeOf } from './record-scope.ts';
import type { Principal, TenancyService } from './tenancy.ts';
import type { SaveOutcome } from './user-service.ts';

export interface LeadSourceView {
  providerInfo: ProviderInfo;
  values: FieldValues;
}

/** Lead sources (/leadsource): saved and fetched by the provider's own IDs, per club. */
export class LeadSourceService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly store: RecordStore,
    private readonly tenancy: TenancyService,
    private readonly clock: () => Date = () => new Date(),
    private readonly onChange: () => void = () => {},
  ) {}

  async save(principal: Principal, save: RecordSave): Promise<SaveOutcome> {
    const info = requireProviderInfo(save.providerInfo, 'leadSource/providerInfo');
    const scope = await scopeOf(this.tenancy, principal, { provider: info.identifier, clientID: info.clientID, clubID: info.clubID });
    const problems = validateFields(LEAD_SOURCE_SCHEMA, save.fields, false);
    const linkKey = { providerId: principal.providerId, entityType: 'LEAD_SOURCE' as const, clubId: scope.clubId, externalId: info.recordID };
    if (problems.length) await rejectSave(this.prisma, problems, linkKey, LEAD_SOURCE_SCHEMA, save.fields);

    const outcome = await saveWithRetries(async (): Promise<SaveOutcome | undefined> => {
      const found = await this.store.readByLink('lead_source', linkKey);
      const entityId = found?.entityId ?? newRowId();
      const stored = (found?.row ?? null) as { version: number } | null;
      const storedValues = stored ? fromColumns(LEAD_SOURCE_SCHEMA, stored) : null;
      if (!stored) {
        const missing = validateFields(LEAD_SOURCE_SCHEMA, save.fields, true);
        if (missing.length) throw new ValidationError(missing);
      }
      refuseIfStale(storedValues, save.fields, 'lead source');
      const merged = mergeFields(LEAD_SOURCE_SCHEMA, storedValues, save.fields, { now: this.clock(), by: principal.code });
      merged.values.active ??= 'true';
      if (stored && merged.changed.length === 0) {
        const still = await this.store.confirmUnchanged('lead_source', entityId, { version: stored.version, modifiedDate: storedValues!.modifiedDate }, undefined);
        return still ? { uuid: entityId, created: false, changed: false } : undefined;
      }
      const row = nextVersion(entityId, scope, stored, storedValues, merged.values, {});
      const change = { entityType: 'LEAD_SOURCE' as const, originProviderId: principal.providerId };
      const written = stored
        ? await this.store.update('lead_source', LEAD_SOURCE_SCHEMA, row, change)
        : await this.store.createAndResolve('lead_source', LEAD_SOURCE_SCHEMA, linkKey, row, change, { kind: 'leadSource', ref: info.recordID });
      return written ? { uuid: entityId, created: !stored, changed: true } : undefined;
    });
    if (outcome.changed) this.onChange();
    return outcome;
  }

  async fetchOne(principal: Principal, ids: { provider: string; clientID: string; clubID: string; identifier: string }): Promise<LeadSourceView> {
    const scope = await scopeOf(this.tenancy, principal, { provider: ids.provider, clientID: ids.clientID, clubID: ids.clubID });
    const link = await this.prisma.link.findUnique({
      where: { providerId_entityType_clubId_externalId: { providerId: principal.providerId, entityType: 'LEAD_SOURCE', clubId: scope.clubId, externalId: ids.identifier } },
    });
    const row = link ? await this.prisma.leadSource.findUnique({ where: { id: link.entityId } }) : null;
    if (!row) throw new HubError('RECORD_NOT_FOUND', `No lead source with identifier '${ids.identifier}' in club '${ids.clubID}' of client '${ids.clientID}'`);
    return {
      providerInfo: { identifier: principal.code, clientID: ids.clientID, clubID: ids.clubID, recordID: ids.identifier },
      values: fromColumns(LEAD_SOURCE_SCHEMA, row),
    };
  }

  /** Every lead source of the club that this provider knows by its own ID, by name. */
  async list(principal: Principal, ids: { provider: string; clientID: string; clubID: string }): Promise<LeadSourceView[]> {
    const scope = await scopeOf(this.tenancy, principal, ids);
    const links = await this.prisma.link.findMany({
      where: { providerId: principal.providerId, entityType: 'LEAD_SOURCE', clubId: scope.clubId },
      select: { entityId: true, externalId: true },
    });
    const externalIds = new Map(links.map((l) => [l.entityId, l.externalId]));
    const rows = await this.prisma.leadSource.findMany({ where: { id: { in: [...externalIds.keys()] } }, orderBy: [{ name: 'asc' }, { id: 'asc' }] });
    return rows.map((row) => ({
      providerInfo: { identifier: principal.code, clientID: ids.clientID, clubID: ids.clubID, recordID: externalIds.get(row.id)! },
      values: fromColumns(LEAD_SOURCE_SCHEMA, row),
    }));
  }
}
