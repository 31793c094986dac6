import { HubError } from '../errors/hub-error.ts';
import { LEAD_SOURCE_SCHEMA } from '../domain/lead-source-record.ts';
import { USER_SCHEMA } from '../domain/user-record.ts';
import type { PrismaClient, DeliveryStatus } from '../store/generated/client.ts';
import { fromColumns } from '../store/record-rows.ts';

export interface DeliveryView {
  id: string;
  provider: string;
  status: string;
  wantedVersion: number;
  deliveredVersion: number;
  lastError: string | null;
  updatedAt: string;
  attempts: { at: string; version: number; outcome: string; httpStatus: number | null; durationMs: number; calls: string | null; error: string | null; idempotencyKey: string }[];
}

export interface RecordView {
  uuid: string;
  type: 'USER' | 'STAFF' | 'LEAD_SOURCE';
  client: string;
  club: string;
  version: number;
  values: Record<string, string | null>;
  links: { provider: string; club: string; externalId: string }[];
  deliveries: DeliveryView[];
}

/**
 * What support and operators see of deliveries: a record with its links
 * and delivery history, the dead-letter list, and replay.
 */
export class DeliveryAdmin {
  constructor(
    private readonly prisma: PrismaClient,
    /** Puts replayed deliveries back on their queues (absent: the next reconcile does). */
    private readonly requeue?: (deliveryIds: string[]) => Promise<void>,
  ) {}

  async record(uuid: string): Promise<RecordView> {
    if (!/^[0-9a-f-]{36}$/i.test(uuid)) throw new HubError('RECORD_NOT_FOUND', `No record with uuid ${uuid}`);
    const user = await this.prisma.user.findUnique({ where: { id: uuid } });
    const leadSource = user ? null : await this.prisma.leadSource.findUnique({ where: { id: uuid } });
    const row = user ?? leadSource;
    if (!row) throw new HubError('RECORD_NOT_FOUND', `No record with uuid ${uuid}`);
    const [club, links, deliveries] = await Promise.all([
      this.prisma.club.findUniqueOrThrow({ where: { id: row.clubId }, include: { client: true } }),
      this.prisma.link.findMany({ where: { entityId: uuid }, orderBy: { createdAt: 'asc' } }),
      this.prisma.delivery.findMany({ where: { entityId: uuid }, include: { attemptsLog: { orderBy: { startedAt: 'desc' }, take: 50 } } }),
    ]);
    const providers = await this.providerCodes([...links.map((l) => l.providerId), ...deliveries.map((d) => d.targetProviderId)]);
    const clubs = new Map((await this.prisma.club.findMany({ where: { id: { in: links.map((l) => l.clubId) } } })).map((c) => [c.id, c.code]));
    return {
      uuid,
      type: user ? (user.userType === 'STAFF' ? 'STAFF' : 'USER') : 'LEAD_SOURCE',
      client: club.client.code,
      club: club.code,
      version: row.version,
      values: user ? fromColumns(USER_SCHEMA, user) : fromColumns(LEAD_SOURCE_SCHEMA, leadSource!),
      links: links.map((l) => ({ provider: providers.get(l.providerId) ?? l.providerId, club: clubs.get(l.clubId) ?? l.clubId, externalId: l.externalId })),
      deliveries: deliveries.map((d) => this.view(d, providers)),
    };
  }

  async list(filter: { status?: string; provider?: string; limit?: number }): Promise<DeliveryView[]> {
    const provider = filter.provider ? await this.prisma.provider.findUnique({ where: { code: filter.provider } }) : undefined;
    if (filter.provider && !provider) return [];
    const status = filter.status?.toUpperCase() as DeliveryStatus | undefined;
    if (status && !['PENDING', 'DELIVERED', 'SKIPPED', 'DEAD'].includes(status)) {
      throw new HubError('INVALID_RECORD', 'status must be one of PENDING, DELIVERED, SKIPPED, DEAD');
    }
    const rows = await this.prisma.delivery.findMany({
      where: { status, targetProviderId: provider?.id },
      orderBy: { updatedAt: 'desc' },
      take: Math.min(filter.limit ?? 50, 500),
      include: { attemptsLog: { orderBy: { startedAt: 'desc' }, take: 5 } },
    });
    const providers = await this.providerCodes(rows.map((r) => r.targetProviderId));
    return rows.map((r) => ({ ...this.view(r, providers), entityId: r.entityId, entityType: r.entityType }));
  }

  /** Sends a dead delivery again (its latest version), after the partner or the turn-up is fixed. */
  async replay(deliveryId: string): Promise<DeliveryView> {
    if (!/^[0-9a-f-]{36}$/i.test(deliveryId)) throw new HubError('RECORD_NOT_FOUND', `No delivery ${deliveryId}`);
    const updated = await this.prisma.delivery.updateMany({
      where: { id: deliveryId, status: 'DEAD' },
      // A dead delivery has no job working on it: it goes back in a job of its own.
      data: { status: 'PENDING', replays: { increment: 1 }, lastError: null, jobId: null },
    });
    const row = await this.prisma.delivery.findUnique({ where: { id: deliveryId }, include: { attemptsLog: { orderBy: { startedAt: 'desc' }, take: 50 } } });
    if (!row) throw new HubError('RECORD_NOT_FOUND', `No delivery ${deliveryId}`);
    if (updated.count === 0) throw new HubError('STALE_UPDATE', `Delivery ${deliveryId} is ${row.status}, not DEAD: only dead deliveries are replayed`);
    await this.requeue?.([deliveryId]);
    return this.view(row, await this.providerCodes([row.targetProviderId]));
  }

  private async providerCodes(ids: string[]): Promise<Map<string, string>> {
    const rows = await this.prisma.provider.findMany({ where: { id: { in: [...new Set(ids)] } }, select: { id: true, code: true } });
    return new Map(rows.map((r) => [r.id, r.code]));
  }

  private view(
    d: { id: string; targetProviderId: string; status: string; wantedVersion: number; deliveredVersion: number; lastError: string | null; updatedAt: Date; attemptsLog: { startedAt: Date; version: number; outcome: string; httpStatus: number | null; durationMs: number; calls: string | null; error: string | null; idempotencyKey: string }[] },
    providers: Map<string, string>,
  ): DeliveryView {
    return {
      id: d.id,
      provider: providers.get(d.targetProviderId) ?? d.targetProviderId,
      status: d.status,
      wantedVersion: d.wantedVersion,
      deliveredVersion: d.deliveredVersion,
      lastError: d.lastError,
      updatedAt: d.updatedAt.toISOString(),
      attempts: d.attemptsLog.map((a) => ({
        at: a.startedAt.toISOString(), version: a.version, outcome: a.outcome, httpStatus: a.httpStatus, durationMs: a.durationMs, calls: a.calls, error: a.error, idempotencyKey: a.idempotencyKey,
      })),
    };
  }
}
