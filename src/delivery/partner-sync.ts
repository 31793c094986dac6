import type { AdapterContext, OutboundLeadSource, PartnerLeadSource } from '../../adapters/contract.ts';
import { normaliseEmail, normaliseName } from '../domain/fan-out.ts';
import type { PrismaClient, EntityType } from '../store/generated/client.ts';
import { findPartnerId } from '../store/links.ts';
import { newRowId } from '../store/row-ids.ts';
import type { ReceivingConnection } from './connections.ts';

const LIST_TTL_MS = 30_000;

/** What a sync did, for the delivery history. */
export type SyncResult = { partnerId: string; how: 'linked' | 'matched' | 'created' | 'updated' } | { partnerId: undefined; how: 'unmatched' | 'no-email' | 'unsupported' };

/**
 * Staff matching and lead-source synchronisation against a partner (seeds
 * 001, 002, 003): the hub never creates staff, it matches them by email;
 * lead sources are matched by name, created when the partner can, renamed
 * when it can update. Partner lists are fetched once per sync and indexed,
 * so a match is linear in the list size; within LIST_TTL_MS the list is
 * reused by deliveries that only need a lookup.
 */
export class PartnerSync {
  private readonly staffLists = new Map<string, { at: number; byEmail: Map<string, string> }>();
  private readonly leadSourceLists = new Map<string, { at: number; byName: Map<string, PartnerLeadSource> }>();

  constructor(private readonly prisma: PrismaClient) {}

  /** The partner's staff ID for a hub staff record: the stored link, else a match by email (stored when found). */
  async staffId(conn: ReceivingConnection, ctx: AdapterContext, staffId: string, options: { refresh: boolean }): Promise<SyncResult> {
    const link = await findPartnerId(this.prisma, conn.providerId, 'STAFF', staffId);
    if (link && !options.refresh) return { partnerId: link, how: 'linked' };
    const staff = await this.prisma.user.findUnique({ where: { id: staffId }, select: { email: true, clubId: true, updatedAt: true } });
    if (!staff?.email) return { partnerId: undefined, how: 'no-email' };
    const scope = this.scopeOf(conn, staff.clubId);
    if (!scope) return { partnerId: undefined, how: 'unsupported' };
    const email = normaliseEmail(staff.email);
    let partnerId: string | undefined;
    // The staff list first (seeds 001/003: the call a partner must have; the hub then applies its
    // own matching rule), a lookup by email when the partner has only that.
    if (conn.adapter.listStaff) {
      const key = `${conn.providerClientId}/${scope.clubId}`;
      let list = this.staffLists.get(key);
      // A list fetched before this staff member last changed may predate its match (a prospect
      // delivered before the staff's own sync finished): on a miss, fetch it again.
      const outdated = (l: { at: number; byEmail: Map<string, string> }) =>
        options.refresh || Date.now() - l.at > LIST_TTL_MS || (!l.byEmail.has(email) && l.at <= staff.updatedAt.getTime());
      if (!list || outdated(list)) {
        const staffList = await conn.adapter.listStaff(ctx, scope);
        list = { at: Date.now(), byEmail: new Map() };
        for (const s of staffList) if (!list.byEmail.has(normaliseEmail(s.email))) list.byEmail.set(normaliseEmail(s.email), s.id);
        this.staffLists.set(key, list);
      }
      partnerId = list.byEmail.get(email);
    } else if (conn.adapter.findStaffByEmail) {
      const found = await conn.adapter.findStaffByEmail(ctx, staff.email.trim(), scope);
      partnerId = found && normaliseEmail(found.email) === email ? found.id : undefined;
    } else {
      return { partnerId: undefined, how: 'unsupported' };
    }
    // An existing link is never dropped here: links are also the partner's inbound identity of records.
    if (!partnerId) return { partnerId: undefined, how: 'unmatched' };
    if (partnerId !== link) await this.relink(conn.providerId, 'STAFF', staffId, staff.clubId, partnerId);
    return { partnerId, how: link === partnerId ? 'linked' : 'matched' };
  }

  /**
   * The partner's lead-source ID: the stored link (renamed in the partner
   * when `pushChanges` and it can update), else a name match, else a create
   * when the partner can create; otherwise prospects go without one.
   */
  async leadSourceId(conn: ReceivingConnection, ctx: AdapterContext, leadSourceId: string, options: { pushChanges: boolean }): Promise<SyncResult> {
    const row = await this.prisma.leadSource.findUnique({ where: { id: leadSourceId } });
    if (!row) return { partnerId: undefined, how: 'unmatched' };
    const scope = this.scopeOf(conn, row.clubId);
    if (!scope) return { partnerId: undefined, how: 'unsupported' };
    const outbound: OutboundLeadSource = { uuid: row.id, name: row.name, active: row.active, ...scope };
    const link = await findPartnerId(this.prisma, conn.providerId, 'LEAD_SOURCE', leadSourceId);
    if (link) {
      // Seed 001: "If this API call does not exist, then no attempts at updates will be made."
      if (options.pushChanges && conn.adapter.updateLeadSource) {
        await conn.adapter.updateLeadSource(ctx, link, outbound);
        return { partnerId: link, how: 'updated' };
      }
      return { partnerId: link, how: 'linked' };
    }
    const match = await this.findLeadSource(conn, ctx, row.name, scope, options.pushChanges);
    if (match) {
      await this.relink(conn.providerId, 'LEAD_SOURCE', leadSourceId, row.clubId, match.id);
      return { partnerId: match.id, how: 'matched' };
    }
    if (!conn.adapter.createLeadSource) return { partnerId: undefined, how: 'unmatched' };
    const created = await conn.adapter.createLeadSource(ctx, outbound);
    await this.relink(conn.providerId, 'LEAD_SOURCE', leadSourceId, row.clubId, created.partnerId);
    this.leadSourceLists.delete(`${conn.providerClientId}/${scope.clubId}`);
    return { partnerId: created.partnerId, how: 'created' };
  }

  private async findLeadSource(conn: ReceivingConnection, ctx: AdapterContext, name: string, scope: { clientId: string; clubId: string }, refresh: boolean) {
    if (conn.adapter.findLeadSourceByName) {
      const found = await conn.adapter.findLeadSourceByName(ctx, name, scope);
      return found && normaliseName(found.name) === normaliseName(name) ? found : undefined;
    }
    if (!conn.adapter.listLeadSources) return undefined;
    const key = `${conn.providerClientId}/${scope.clubId}`;
    let list = this.leadSourceLists.get(key);
    if (!list || refresh || Date.now() - list.at > LIST_TTL_MS) {
      const all = await conn.adapter.listLeadSources(ctx, scope);
      list = { at: Date.now(), byName: new Map() };
      for (const l of all) if (!list.byName.has(normaliseName(l.name))) list.byName.set(normaliseName(l.name), l);
      this.leadSourceLists.set(key, list);
    }
    return list.byName.get(normaliseName(name));
  }

  private scopeOf(conn: ReceivingConnection, clubId: string): { clientId: string; clubId: string } | undefined {
    const partnerClub = conn.clubs.get(clubId);
    return partnerClub ? { clientId: conn.clientExternalId, clubId: partnerClub } : undefined;
  }

  /** Stores hub record <-> partner ID, replacing an older link of the record; another record's link to that ID wins. */
  async relink(providerId: string, entityType: EntityType, entityId: string, clubId: string, externalId: string): Promise<void> {
    await this.prisma.$transaction([
      this.prisma.link.deleteMany({ where: { providerId, entityType, entityId, clubId, NOT: { externalId } } }),
      this.prisma.$executeRaw`
        INSERT INTO link (id, "entityType", "entityId", "providerId", "clubId", "externalId")
        VALUES (${newRowId()}::uuid, ${entityType}::"EntityType", ${entityId}::uuid, ${providerId}::uuid, ${clubId}::uuid, ${externalId})
        ON CONFLICT ("providerId", "entityType", "clubId", "externalId") DO NOTHING`,
    ]);
  }
}
