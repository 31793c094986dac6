import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, inject } from 'vitest';
import type { Capability } from '../../adapters/contract.ts';
import { FakeReferencePartner, type FakeOptions } from '../../adapters/reference/fake.ts';
import { appServer, createApp } from '../../src/api/app.ts';
import type { DeliveryDefaults } from '../../src/config.ts';
import { DeliveryEngine, type DeliveryEngineOptions } from '../../src/delivery/delivery-engine.ts';
import { createLogger } from '../../src/log.ts';
import { createHubServices } from '../../src/services/hub-services.ts';
import { applyTurnup } from '../../src/turnup/apply-turnup.ts';
import type { Agreement, Connection, TurnupFile } from '../../src/turnup/turnup-schema.ts';
import request from 'supertest';
import { API, createTestHub, userXml, type Tenant, type TestHub } from './test-hub.ts';

export const REDIS_TEST_URL = process.env.REDIS_TEST_URL ?? 'redis://127.0.0.1:6379';

/** Postgres runs use the Redis queue backend; PGlite runs use BullMQ's PostgreSQL backend on PGlite. */
export function queueBackendUnderTest(): 'redis' | 'postgres' {
  return inject('databaseKind') === 'postgres' ? 'redis' : 'postgres';
}

export const FAST_DELIVERY: DeliveryDefaults = {
  concurrency: 5,
  attempts: 8,
  backoffMs: 100,
  timeoutMs: 2_000,
  relayIntervalMs: 50,
  reconcileIntervalMs: 2_000,
  eventRetentionMs: 7 * 24 * 3_600_000,
};

export interface PartnerSetup {
  code: string;
  /** Receives from the hub through a fake partner; omit for a send-only provider. */
  receives?: {
    agreement?: Partial<Agreement>;
    capabilities?: Capability[];
    signingSecret?: string;
    delivery?: Record<string, number>;
    /** The connection's auth. @defaultValue none */
    auth?: Connection['auth'];
    /** Let the connection call the fake on 127.0.0.1. @defaultValue true */
    allowPrivateNetwork?: boolean;
    /** What the fake itself demands, when it differs from the connection (default: the connection's signing secret). */
    fake?: Omit<FakeOptions, 'port'>;
  };
}

export interface Rig {
  hub: TestHub;
  engine: DeliveryEngine;
  client: string;
  clubCode: string;
  clientId: string;
  /** The key the rig's connections are encrypted with (CONNECTOR_ENCRYPTION_KEY for CLI runs against the rig). */
  encryptionKey: string;
  partners: Record<string, { tenant: Tenant; fake?: FakeReferencePartner }>;
  /** A second delivery engine on the same queues, as a second worker process runs one (options as given); stopped with the rig. */
  anotherEngine(overrides?: Partial<DeliveryEngineOptions>): Promise<DeliveryEngine>;
  stop(): Promise<void>;
}

const FULL_AGREEMENT: Agreement = {
  direction: 'both',
  userTypes: ['PROSPECT', 'MEMBER', 'EX_MEMBER'],
  prospects: { staffOwner: true, leadSource: true, trial: true },
};

/**
 * One client turned up with several providers; the receiving ones are
 * backed by fake partner servers over real HTTP. The hub app and a delivery
 * engine scoped to this client run in the test process.
 */
export async function startRig(setups: PartnerSetup[], options: { delivery?: Partial<DeliveryDefaults> } = {}): Promise<Rig> {
  const id = randomUUID().slice(0, 8);
  const clientCode = `rig-${id}`;
  const partners: Rig['partners'] = {};
  const file: TurnupFile = { providers: [], clients: [{ code: clientCode, name: `Rig ${id}`, clubs: [{ code: 'main', name: 'Main' }], providers: [] }] };
  for (const setup of setups) {
    const code = `${setup.code}_${id}`;
    const token = randomBytes(24).toString('hex');
    const fake = setup.receives
      ? await new FakeReferencePartner({ signingSecret: setup.receives.signingSecret, ...setup.receives.fake }).start()
      : undefined;
    file.providers.push({ code, name: code, unknownReferences: 'reject', credentials: [{ type: 'token', token }] });
    file.clients[0].providers.push({
      provider: code,
      clientId: `${setup.code}-client`,
      clubs: { main: `${setup.code}-club` },
      agreement: setup.receives ? { ...FULL_AGREEMENT, ...setup.receives.agreement } : { ...FULL_AGREEMENT, direction: 'send' },
      connection: fake
        ? {
            adapter: 'reference',
            url: fake.url,
            auth: setup.receives!.auth ?? { type: 'none' },
            allowPrivateNetwork: setup.receives!.allowPrivateNetwork ?? true,
            signingSecret: setup.receives!.signingSecret,
            delivery: setup.receives!.delivery ?? {},
            options: setup.receives!.capabilities ? { capabilities: setup.receives!.capabilities } : {},
          }
        : undefined,
    });
    partners[setup.code] = {
      tenant: {
        provider: code, token, auth: `Bearer ${token}`, username: '', password: '', basicAuth: '',
        client: `${setup.code}-client`, clubs: [`${setup.code}-club`], clientCode, clubCodes: ['main'],
      },
      fake,
    };
  }
  // A key the rig keeps, so CLI commands run against the rig can decrypt its connections.
  const encryptionKey = inject('encryptionKey');
  const base = createTestHub();
  await applyTurnup({ prisma: base.prisma, secretBox: base.secretBox }, file);
  const clientId = (await base.prisma.client.findUniqueOrThrow({ where: { code: clientCode } })).id;
  const startEngine = (overrides: Partial<DeliveryEngineOptions> = {}) =>
    DeliveryEngine.start({
      prisma: base.prisma,
      secretBox: base.secretBox,
      databaseUrl: inject('databaseUrl'),
      embedded: inject('databaseKind') === 'pglite',
      redisUrl: queueBackendUnderTest() === 'redis' ? REDIS_TEST_URL : undefined,
      defaults: { ...FAST_DELIVERY, ...options.delivery },
      logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'),
      refreshMs: 500,
      clientIds: [clientId],
      ...overrides,
    });
  const engine = await startEngine();
  const others: DeliveryEngine[] = [];
  // The same app as createTestHub's, with saves waking the in-process relay.
  const services = createHubServices({ prisma: base.prisma, store: base.store, cacheTtlMs: 0, onChange: () => engine.wake(), requeue: (ids) => engine.relay.requeue(ids) });
  const app = createApp({ services, logger: createLogger('silent'), bodyLimitBytes: 64 * 1024, adminToken: base.adminToken, isReady: async () => true });
  const hub: TestHub = { ...base, server: appServer(app), services };
  return {
    hub,
    engine,
    client: clientCode,
    clubCode: 'main',
    clientId,
    encryptionKey,
    partners,
    async anotherEngine(overrides) {
      const other = await startEngine(overrides);
      others.push(other);
      return other;
    },
    async stop() {
      for (const other of others) await other.stop();
      await engine.stop();
      for (const p of Object.values(partners)) await p.fake?.stop();
      await base.close();
    },
  };
}

/** Polls until `check` returns a truthy value (or throws the last failure after timeoutMs). */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = new Error(`condition still false after ${timeoutMs} ms`);
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw last;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Waits until every delivery of the rig's client has settled (nothing pending). */
export async function settled(rig: Rig, timeoutMs = 20_000): Promise<void> {
  await eventually(async () => {
    const unrelayed = await rig.hub.prisma.outboxEvent.count({ where: { clientId: rig.clientId, relayedAt: null } });
    const pending = await rig.hub.prisma.delivery.count({ where: { clientId: rig.clientId, status: 'PENDING' } });
    return unrelayed === 0 && pending === 0;
  }, timeoutMs);
}

/** A provider of the rig saves a user; resolves with the hub UUID. */
export async function postAs(rig: Rig, who: string, recordID: string, fields: Record<string, string>): Promise<string> {
  const t = rig.partners[who].tenant;
  const res = await request(rig.hub.server).post(`${API}/user`).set('Authorization', t.auth).type('application/xml').send(userXml(t, recordID, fields));
  if (res.status !== 200) throw new Error(`save answered ${res.status}: ${res.text}`);
  return /<uuid>([^<]+)<\/uuid>/.exec(res.text)![1];
}

/** The delivery of a record to one partner of the rig, with its attempts oldest first. */
export async function deliveryOf(rig: Rig, uuid: string, partner: string) {
  const provider = await rig.hub.prisma.provider.findUniqueOrThrow({ where: { code: rig.partners[partner].tenant.provider } });
  return rig.hub.prisma.delivery.findFirst({
    where: { entityId: uuid, targetProviderId: provider.id },
    include: { attemptsLog: { orderBy: { startedAt: 'asc' } } },
  });
}

/** One rig per describe block (A sending, plus `setups`), so a failing partner's breaker or queue never touches another case. */
export function withRig(setups: PartnerSetup[]): () => Rig {
  let rig: Rig;
  beforeAll(async () => {
    rig = await startRig([{ code: 'A' }, ...setups]);
  });
  afterAll(() => rig?.stop());
  return () => rig;
}
