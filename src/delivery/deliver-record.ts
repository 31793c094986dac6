import type { AdapterContext, OutboundUser, ReceivableUserType } from '../../adapters/contract.ts';
import { userDeliveryMode } from '../../adapters/contract.ts';
import { USER_SCHEMA } from '../domain/user-record.ts';
import type { PrismaClient } from '../store/generated/client.ts';
import type { ClaimedDelivery } from './delivery-store.ts';
import { fromColumns } from '../store/record-rows.ts';
import type { ReceivingConnection } from './connections.ts';
import type { PartnerSync } from './partner-sync.ts';

/** The outcome of delivering one version: sent (or deliberately not), with a note for the history. */
export interface DeliveryOutcome {
  outcome: 'DELIVERED' | 'SKIPPED';
  version: number;
  note: string;
}

const TRIAL_FIELDS = ['trialStartDate', 'trialEndDate'];

/** A user_record row as the claim reads it (JSON: dates as text). */
interface UserRow {
  id: string;
  clubId: string;
  userType: string;
  version: number;
  ownerId: string | null;
  leadSourceId: string | null;
  [column: string]: unknown;
}

/**
 * An adapter context whose HTTP client sends the idempotency key of a
 * record version ('record'), of the record's creation in this partner
 * ('create': the same key whatever the version, so a repeated create after
 * a crash is answered, not applied), or of a referenced record ('reference').
 */
export type ContextFactory = (purpose: 'record' | 'create' | 'reference', entityId: string, version: number) => AdapterContext;

/** The outcome, plus the partner's ID when this delivery created the record there. */
export interface UserDeliveryOutcome extends DeliveryOutcome {
  newLink?: { clubId: string; externalId: string };
}

/**
 * Delivering records to one partner, by record type. Pure engine logic:
 * which fields the agreement includes, references translated through links
 * and sync, create vs update by the stored link. The adapter only translates.
 */
export class RecordDelivery {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly sync: PartnerSync,
  ) {}

  async deliver(claimed: ClaimedDelivery, conn: ReceivingConnection, ctx: ContextFactory): Promise<UserDeliveryOutcome> {
    switch (claimed.entityType) {
      case 'USER':
        return this.deliverUser(claimed, conn, ctx);
      case 'STAFF':
        return this.matchStaff(claimed, conn, ctx);
      case 'LEAD_SOURCE':
        return this.syncLeadSource(claimed.entityId, conn, ctx);
    }
  }

  /** Current version of a record (what a delivery sends), or undefined when it is gone. */
  async versionOf(entityType: string, entityId: string): Promise<number | undefined> {
    const row =
      entityType === 'LEAD_SOURCE'
        ? await this.prisma.leadSource.findUnique({ where: { id: entityId }, select: { version: true } })
        : await this.prisma.user.findUnique({ where: { id: entityId }, select: { version: true } });
    return row?.version;
  }

  private async deliverUser(claimed: ClaimedDelivery, conn: ReceivingConnection, ctx: ContextFactory): Promise<UserDeliveryOutcome> {
    const user = claimed.user as UserRow | null;
    if (!user) return { outcome: 'SKIPPED', version: 0, note: 'the record no longer exists' };
    const skip = (note: string): DeliveryOutcome => ({ outcome: 'SKIPPED', version: user.version, note });
    const type = user.userType as ReceivableUserType;
    if (!conn.agreement.userTypes.includes(type)) return skip(`the agreement with ${conn.providerCode} does not include ${type}`);
    const mode = userDeliveryMode(conn.adapter.capabilities, type);
    if (!mode) return skip(`the ${conn.adapter.name} adapter cannot receive ${type}`);
    const partnerClub = conn.clubs.get(user.clubId);
    if (!partnerClub) return skip(`the record's club is not granted to ${conn.providerCode}`);

    const fields = fromColumns(USER_SCHEMA, user);
    const prospect = type === 'PROSPECT';
    if (!(prospect && conn.agreement.prospects.trial)) for (const f of TRIAL_FIELDS) delete fields[f];
    const context = ctx('record', user.id, user.version);
    const out: OutboundUser = { uuid: user.id, userType: type, fields, clientId: conn.clientExternalId, clubId: partnerClub };
    const notes: string[] = [];
    if (prospect && conn.agreement.prospects.staffOwner && user.ownerId) {
      // Seed 001: matched staff -> the partner's staff ID; unmatched -> no owner.
      const owner = await this.sync.staffId(conn, context, user.ownerId, { refresh: false });
      if (owner.partnerId) out.ownerId = owner.partnerId;
      notes.push(`owner ${owner.partnerId ?? `none (${owner.how})`}`);
    }
    if (prospect && conn.agreement.prospects.leadSource && user.leadSourceId) {
      const version = (await this.versionOf('LEAD_SOURCE', user.leadSourceId)) ?? 0;
      const source = await this.sync.leadSourceId(conn, ctx('reference', user.leadSourceId, version), user.leadSourceId, { pushChanges: false });
      if (source.partnerId) out.leadSourceId = source.partnerId;
      notes.push(`lead source ${source.partnerId ?? `none (${source.how})`}`);
    }
    const link = claimed.partnerId;
    let partnerId: string;
    if (link) {
      partnerId = mode === 'save' ? (await conn.adapter.saveUser!(context, out, link)).partnerId : link;
      if (mode !== 'save') await conn.adapter.updateUser!(context, link, out);
    } else {
      // The claim marked this create as attempted (claimed.createAttemptedBefore says whether an earlier one was).
      const create = ctx('create', user.id, 0);
      const created = mode === 'save' ? await conn.adapter.saveUser!(create, out, undefined) : await conn.adapter.createUser!(create, out);
      partnerId = created.partnerId;
      // An earlier create landed with older values and was answered again from the partner's
      // idempotency store (the partner says so, or cannot say and a create was attempted before):
      // bring the record to this version.
      if (created.replayed === true || (created.replayed === undefined && claimed.createAttemptedBefore)) {
        if (mode === 'save') await conn.adapter.saveUser!(context, out, partnerId);
        else await conn.adapter.updateUser!(context, partnerId, out);
        notes.push('create repeated after an interrupted attempt');
      }
    }
    return {
      outcome: 'DELIVERED',
      version: user.version,
      note: [`${link ? 'updated' : 'created'} ${partnerId}`, ...notes].join('; '),
      newLink: link === partnerId ? undefined : { clubId: user.clubId, externalId: partnerId },
    };
  }

  /** A staff change: (re)match by email. Never creates staff in the partner (seed 001). */
  private async matchStaff(claimed: ClaimedDelivery, conn: ReceivingConnection, ctx: ContextFactory): Promise<DeliveryOutcome> {
    const entityId = claimed.entityId;
    const version = (claimed.user as UserRow | null)?.version;
    if (version === undefined) return { outcome: 'SKIPPED', version: 0, note: 'the record no longer exists' };
    const result = await this.sync.staffId(conn, ctx('record', entityId, version), entityId, { refresh: true });
    return { outcome: result.partnerId ? 'DELIVERED' : 'SKIPPED', version, note: result.partnerId ? `staff ${result.how} ${result.partnerId}` : `staff ${result.how}` };
  }

  private async syncLeadSource(entityId: string, conn: ReceivingConnection, ctx: ContextFactory): Promise<DeliveryOutcome> {
    const version = await this.versionOf('LEAD_SOURCE', entityId);
    if (version === undefined) return { outcome: 'SKIPPED', version: 0, note: 'the record no longer exists' };
    const result = await this.sync.leadSourceId(conn, ctx('record', entityId, version), entityId, { pushChanges: true });
    return {
      outcome: result.partnerId ? 'DELIVERED' : 'SKIPPED',
      version,
      note: result.partnerId ? `lead source ${result.how} ${result.partnerId}` : `lead source ${result.how}: prospects go without it`,
    };
  }
}
