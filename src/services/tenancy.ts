import type { PrismaClient } from '../store/generated/client.ts';
import { hashToken, verifyPassword } from '../security/credential-hash.ts';
import { createHash } from 'node:crypto';

/** The provider a request is authenticated as. */
export interface Principal {
  providerId: string;
  code: string;
  unknownReferences: 'REJECT' | 'DEFER';
  rateLimitPerSecond: number | null;
}

/** A provider's sandbox: the clients and clubs it is granted, by its own IDs and by hub IDs. */
export interface Grants {
  /** provider client ID -> client */
  clients: Map<string, GrantedClient>;
  /** hub club ID -> where the provider knows it */
  clubsById: Map<string, { clientId: string; clientExternalId: string; clubExternalId: string }>;
}

export interface GrantedClient {
  clientId: string;
  externalId: string;
  /** provider club ID -> hub club ID */
  clubs: Map<string, string>;
}

interface Cached<T> {
  /** In flight or settled: concurrent misses share one query. */
  value: Promise<T>;
  expires: number;
}

/**
 * Authentication and grants, cached for `ttlMs` so the ingest path does not
 * pay a query (or an scrypt) per request; the requests that miss together
 * (a cold start, an expiry under load) wait for one query. A revoked
 * credential or grant stops working within ttlMs; `invalidate()` makes it
 * immediate in-process.
 */
export class TenancyService {
  private readonly principals = new Map<string, Cached<Principal | null>>();
  private readonly grants = new Map<string, Cached<Grants>>();

  constructor(
    private readonly prisma: PrismaClient,
    private readonly ttlMs: number,
  ) {}

  invalidate(): void {
    this.principals.clear();
    this.grants.clear();
  }

  async authenticateToken(token: string): Promise<Principal | null> {
    const hash = hashToken(token);
    return this.cached(`t:${hash}`, async () => {
      const credential = await this.prisma.providerCredential.findFirst({
        where: { kind: 'TOKEN', secretHash: hash },
        include: { provider: true },
      });
      return credential ? toPrincipal(credential.provider) : null;
    });
  }

  async authenticateBasic(username: string, password: string): Promise<Principal | null> {
    // Keyed by a hash of both, so a wrong password is never served from a right one's entry.
    const key = `b:${createHash('sha256').update(`${username}\u0000${password}`).digest('hex')}`;
    return this.cached(key, async () => {
      const credential = await this.prisma.providerCredential.findUnique({
        where: { username },
        include: { provider: true },
      });
      if (!credential || credential.kind !== 'BASIC') return null;
      return (await verifyPassword(password, credential.secretHash)) ? toPrincipal(credential.provider) : null;
    });
  }

  grantsOf(providerId: string): Promise<Grants> {
    return cached(this.grants, providerId, this.ttlMs, async () => {
      const rows = await this.prisma.providerClient.findMany({ where: { providerId }, include: { clubs: true } });
      const grants: Grants = { clients: new Map(), clubsById: new Map() };
      for (const row of rows) {
        const client: GrantedClient = { clientId: row.clientId, externalId: row.externalId, clubs: new Map() };
        for (const club of row.clubs) {
          client.clubs.set(club.externalId, club.clubId);
          grants.clubsById.set(club.clubId, { clientId: row.clientId, clientExternalId: row.externalId, clubExternalId: club.externalId });
        }
        grants.clients.set(row.externalId, client);
      }
      return grants;
    });
  }

  private cached(key: string, load: () => Promise<Principal | null>): Promise<Principal | null> {
    return cached(this.principals, key, this.ttlMs, load);
  }
}

/**
 * The entry under `key`, loaded once while it is fresh. A failed load and
 * a refused credential are not kept: a credential added by turn-up works at
 * once, and a database hiccup is retried by the next request.
 */
export function cached<T>(entries: Map<string, Cached<T>>, key: string, ttlMs: number, load: () => Promise<T>): Promise<T> {
  const hit = entries.get(key);
  if (hit && hit.expires > Date.now()) return hit.value;
  const entry: Cached<T> = { value: load(), expires: Date.now() + ttlMs };
  entries.set(key, entry);
  const forget = () => {
    if (entries.get(key) === entry) entries.delete(key);
  };
  entry.value.then((value) => value ?? forget(), forget);
  return entry.value;
}

function toPrincipal(provider: { id: string; code: string; unknownReferencePolicy: 'REJECT' | 'DEFER'; rateLimitPerSecond: number | null }): Principal {
  return {
    providerId: provider.id,
    code: provider.code,
    unknownReferences: provider.unknownReferencePolicy,
    rateLimitPerSecond: provider.rateLimitPerSecond,
  };
}
