import { randomBytes, randomUUID } from 'node:crypto';
import type http from 'node:http';
import { inject } from 'vitest';
import { appServer, createApp } from '../../src/api/app.ts';
import { createLogger } from '../../src/log.ts';
import { SecretBox } from '../../src/security/secret-box.ts';
import { createHubServices, type HubServices } from '../../src/services/hub-services.ts';
import { createPrisma, type PrismaClient } from '../../src/store/database.ts';
import { RecordStore } from '../../src/store/record-store.ts';
import { applyTurnup } from '../../src/turnup/apply-turnup.ts';
import type { TurnupFile } from '../../src/turnup/turnup-schema.ts';

export interface TestHub {
  /** The hub's HTTP server, built as the hub builds it (appServer); supertest listens on it per request. */
  server: http.Server;
  prisma: PrismaClient;
  store: RecordStore;
  services: HubServices;
  secretBox: SecretBox;
  adminToken: string;
  close(): Promise<void>;
}

/** The hub's HTTP server on the run's database (PostgreSQL or PGlite), caches off. */
export function createTestHub(
  options: { bodyLimitBytes?: number; clock?: () => Date; databaseUrl?: string; poolSize?: number; poolWaitMs?: number } = {},
): TestHub {
  const url = options.databaseUrl ?? inject('databaseUrl');
  const prisma = createPrisma(url, options.poolSize ?? 4, options.poolWaitMs);
  const store = RecordStore.open(url, options.poolSize ?? 4, { oneSession: inject('databaseKind') === 'pglite', waitMs: options.poolWaitMs });
  const services = createHubServices({ prisma, store, cacheTtlMs: 0, clock: options.clock });
  const adminToken = randomBytes(24).toString('hex');
  const app = createApp({
    services,
    logger: createLogger('silent'),
    bodyLimitBytes: options.bodyLimitBytes ?? 64 * 1024,
    adminToken,
    isReady: async () => (await prisma.$queryRaw`SELECT 1`) !== undefined,
  });
  return {
    server: appServer(app),
    prisma,
    store,
    services,
    secretBox: new SecretBox(inject('encryptionKey')),
    adminToken,
    close: async () => {
      await prisma.$disconnect();
      await store.close();
    },
  };
}

export interface Tenant {
  provider: string;
  token: string;
  username: string;
  password: string;
  /** Authorization header value (bearer). */
  auth: string;
  basicAuth: string;
  client: string;
  clubs: string[];
  clientCode: string;
  clubCodes: string[];
}

const rand = () => randomUUID().slice(0, 8);

/** Turns up a provider with its own client and clubs, all with random IDs. */
export async function turnUpTenant(
  hub: TestHub,
  options: { unknownReferences?: 'reject' | 'defer'; rateLimitPerSecond?: number; clubs?: number; provider?: string; client?: string; clubIds?: string[] } = {},
): Promise<Tenant> {
  const id = rand();
  const provider = options.provider ?? `P_${id}`;
  const token = randomBytes(24).toString('hex');
  const username = `user-${id}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const client = options.client ?? `C-${id}`;
  const clubs = options.clubIds ?? Array.from({ length: options.clubs ?? 2 }, (_, i) => `K${i + 1}-${id}`);
  const clientCode = `client-${id}`;
  const clubCodes = clubs.map((_, i) => `club${i + 1}`);
  const file: TurnupFile = {
    providers: [
      {
        code: provider,
        name: `Provider ${id}`,
        unknownReferences: options.unknownReferences ?? 'reject',
        rateLimitPerSecond: options.rateLimitPerSecond,
        credentials: [
          { type: 'token', token },
          { type: 'basic', username, password },
        ],
      },
    ],
    clients: [
      {
        code: clientCode,
        name: `Client ${id}`,
        clubs: clubCodes.map((code) => ({ code, name: code })),
        providers: [
          {
            provider,
            clientId: client,
            clubs: Object.fromEntries(clubCodes.map((code, i) => [code, clubs[i]])),
            agreement: { direction: 'send', userTypes: ['PROSPECT', 'MEMBER', 'EX_MEMBER'], prospects: { staffOwner: false, leadSource: false, trial: false } },
          },
        ],
      },
    ],
  };
  await applyTurnup({ prisma: hub.prisma, secretBox: hub.secretBox }, file);
  return {
    provider,
    token,
    username,
    password,
    auth: `Bearer ${token}`,
    basicAuth: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`,
    client,
    clubs,
    clientCode,
    clubCodes,
  };
}

/** A <user> body for this tenant. */
export function userXml(t: Pick<Tenant, 'provider' | 'client' | 'clubs'>, recordID: string, userInfo: Record<string, string>, extra = '', club = t.clubs[0]): string {
  const fields = Object.entries(userInfo)
    .map(([k, v]) => (v === '' ? `<${k}/>` : `<${k}>${v}</${k}>`))
    .join('');
  return `<user><providerInfo><identifier>${t.provider}</identifier><clientID>${t.client}</clientID><clubID>${club}</clubID><recordID>${recordID}</recordID></providerInfo><userInfo>${fields}</userInfo>${extra}</user>`;
}

export function leadSourceXml(t: Pick<Tenant, 'provider' | 'client' | 'clubs'>, recordID: string, leadInfo: Record<string, string>, club = t.clubs[0]): string {
  const fields = Object.entries(leadInfo)
    .map(([k, v]) => (v === '' ? `<${k}/>` : `<${k}>${v}</${k}>`))
    .join('');
  return `<leadSource><providerInfo><identifier>${t.provider}</identifier><clientID>${t.client}</clientID><clubID>${club}</clubID><recordID>${recordID}</recordID></providerInfo><leadInfo>${fields}</leadInfo></leadSource>`;
}

export const API = '/connector/api/2011-11';
