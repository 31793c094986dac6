import { ADAPTERS, type PartnerAdapter } from '../../adapters/index.ts';
import type { DeliveryDefaults } from '../config.ts';
import type { SecretBox } from '../security/secret-box.ts';
import { Prisma, type PrismaClient } from '../store/generated/client.ts';
import { decryptConnection } from '../turnup/connection-secrets.ts';
import { agreementSchema, type Agreement, type Connection } from '../turnup/turnup-schema.ts';

/** A provider that receives for one client: its agreement, connection and adapter. */
export interface ReceivingConnection {
  providerClientId: string;
  providerId: string;
  providerCode: string;
  clientId: string;
  /** The provider's own client ID. */
  clientExternalId: string;
  /** hub club ID -> the provider's club ID (granted clubs only). */
  clubs: Map<string, string>;
  agreement: Agreement;
  connection: Connection;
  adapter: PartnerAdapter;
  settings: { concurrency: number; attempts: number; backoffMs: number; timeoutMs: number; ratePerSecond?: number };
}

/**
 * The receiving connections, decrypted and with their adapters built,
 * reloaded every `ttlMs` so turn-up changes reach running workers.
 */
export class ConnectionRegistry {
  private loaded: { at: number; byId: Map<string, ReceivingConnection>; byClient: Map<string, ReceivingConnection[]>; broken: Map<string, string> } | undefined;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly secretBox: SecretBox,
    private readonly defaults: DeliveryDefaults,
    private readonly ttlMs = 5_000,
    private readonly clientIds?: string[],
  ) {}

  async all(): Promise<ReceivingConnection[]> {
    await this.fresh();
    return [...this.loaded!.byId.values()];
  }

  async forClient(clientId: string): Promise<ReceivingConnection[]> {
    await this.fresh();
    return this.loaded!.byClient.get(clientId) ?? [];
  }

  async byId(providerClientId: string): Promise<ReceivingConnection | undefined> {
    await this.fresh();
    return this.loaded!.byId.get(providerClientId);
  }

  /** Why a connection could not be built (unknown adapter, bad options), if it could not. */
  async problemOf(providerClientId: string): Promise<string | undefined> {
    await this.fresh();
    return this.loaded!.broken.get(providerClientId);
  }

  invalidate(): void {
    this.loaded = undefined;
  }

  private async fresh(): Promise<void> {
    if (this.loaded && Date.now() - this.loaded.at < this.ttlMs) return;
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    await this.loading;
  }

  private async load(): Promise<void> {
    const rows = await this.prisma.providerClient.findMany({
      where: { connection: { not: Prisma.DbNull }, ...(this.clientIds ? { clientId: { in: this.clientIds } } : {}) },
      include: { provider: true, clubs: true },
    });
    const byId = new Map<string, ReceivingConnection>();
    const byClient = new Map<string, ReceivingConnection[]>();
    const broken = new Map<string, string>();
    for (const row of rows) {
      const agreement = agreementSchema.parse(row.agreement);
      if (agreement.direction === 'send') continue;
      try {
        const connection = decryptConnection(this.secretBox, row.connection)!;
        const factory = ADAPTERS[connection.adapter];
        if (!factory) throw new Error(`no adapter named "${connection.adapter}" (known: ${Object.keys(ADAPTERS).join(', ')})`);
        const d = connection.delivery;
        const receiving: ReceivingConnection = {
          providerClientId: row.id,
          providerId: row.providerId,
          providerCode: row.provider.code,
          clientId: row.clientId,
          clientExternalId: row.externalId,
          clubs: new Map(row.clubs.map((c) => [c.clubId, c.externalId])),
          agreement,
          connection,
          adapter: factory(connection.options),
          settings: {
            concurrency: d.concurrency ?? this.defaults.concurrency,
            attempts: d.attempts ?? this.defaults.attempts,
            backoffMs: d.backoffMs ?? this.defaults.backoffMs,
            timeoutMs: d.timeoutMs ?? this.defaults.timeoutMs,
            ratePerSecond: d.ratePerSecond,
          },
        };
        byId.set(row.id, receiving);
        byClient.set(row.clientId, [...(byClient.get(row.clientId) ?? []), receiving]);
      } catch (error) {
        broken.set(row.id, `connection of ${row.provider.code}: ${(error as Error).message}`);
      }
    }
    this.loaded = { at: Date.now(), byId, byClient, broken };
  }
}
