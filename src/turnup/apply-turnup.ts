import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { hashPassword, hashToken, verifyPassword } from '../security/credential-hash.ts';
import type { SecretBox } from '../security/secret-box.ts';
import { Prisma, type PrismaClient, type ProviderClub, type ProviderCredential } from '../store/generated/client.ts';
import { decryptConnection, encryptConnection } from './connection-secrets.ts';
import { assertTurnupReferences, formatPath, TurnupError } from './load-turnup.ts';
import type { ClientDeclaration, ProviderDeclaration, TurnupFile } from './turnup-schema.ts';

export { decryptConnection };

export type TurnupEntity = 'provider' | 'credential' | 'client' | 'club' | 'grant' | 'club-grant';
export type TurnupAction = 'created' | 'updated' | 'unchanged' | 'removed';
export interface TurnupChange {
  entity: TurnupEntity;
  key: string;
  action: TurnupAction;
}
export interface TurnupReport {
  changes: TurnupChange[];
}
export interface TurnupDeps {
  prisma: PrismaClient;
  secretBox: SecretBox;
}

type Tx = Prisma.TransactionClient;
type CredentialDeclaration = ProviderDeclaration['credentials'][number];
type GrantDeclaration = ClientDeclaration['providers'][number];

interface ApplyContext {
  tx: Tx;
  secretBox: SecretBox;
  note(entity: TurnupEntity, key: string, action: TurnupAction): void;
}

interface ClientState {
  id: string;
  code: string;
  clubIdByCode: Map<string, string>;
  /** Every club of the client in the database, also those the file no longer lists. */
  clubCodeById: Map<string, string>;
}

/** Thrown inside the transaction to roll a dry run back after computing its report. */
class DryRunRollback extends Error {}

/** Serialises concurrent applies, which would otherwise race on the same codes and unique IDs. */
const TURNUP_LOCK_KEY = 72707370;
const CANNOT_APPLY = 'The turn-up cannot be applied:';

/**
 * Makes the database match the file, in one transaction: providers, their
 * credentials (replaced exactly), clients, clubs and grants upserted by code.
 * Applying the same file twice changes nothing the second time. Clubs and
 * clients the file does not mention are left alone (records hang off them);
 * grants of the clients it names are revoked when the file drops them.
 */
export async function applyTurnup(deps: TurnupDeps, file: TurnupFile, options: { dryRun?: boolean } = {}): Promise<TurnupReport> {
  assertTurnupReferences(file, CANNOT_APPLY);
  const changes: TurnupChange[] = [];
  try {
    await deps.prisma.$transaction(
      async (tx) => {
        await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${TURNUP_LOCK_KEY})`);
        const context: ApplyContext = { tx, secretBox: deps.secretBox, note: (entity, key, action) => changes.push({ entity, key, action }) };
        const providerIds = await applyProviders(context, file.providers);
        await applyCredentials(context, file.providers, providerIds);
        const clients = await applyClients(context, file.clients);
        await applyGrants(context, file.clients, providerIds, clients);
        if (options.dryRun) throw new DryRunRollback();
      },
      { timeout: 60_000, maxWait: 20_000 },
    );
  } catch (error) {
    if (!(error instanceof DryRunRollback)) throw error;
  }
  return { changes };
}

/** One line per change, then `3 created, 1 updated, 5 unchanged, 0 removed`. */
export function formatTurnupReport(report: TurnupReport): string {
  const count = (action: TurnupAction) => report.changes.filter((change) => change.action === action).length;
  return [
    ...report.changes.map((change) => `${change.action.padEnd(9)} ${change.entity.padEnd(10)} ${change.key}`),
    `${count('created')} created, ${count('updated')} updated, ${count('unchanged')} unchanged, ${count('removed')} removed`,
  ].join('\n');
}

async function applyProviders({ tx, note }: ApplyContext, providers: ProviderDeclaration[]): Promise<Map<string, string>> {
  const rows = await tx.provider.findMany({ where: { code: { in: providers.map((provider) => provider.code) } } });
  const existing = new Map(rows.map((row) => [row.code, row]));
  const ids = new Map<string, string>();
  for (const provider of providers) {
    const data = {
      name: provider.name,
      unknownReferencePolicy: provider.unknownReferences === 'defer' ? ('DEFER' as const) : ('REJECT' as const),
      rateLimitPerSecond: provider.rateLimitPerSecond ?? null,
    };
    const row = existing.get(provider.code);
    if (!row) {
      const id = randomUUID();
      await tx.provider.create({ data: { id, code: provider.code, ...data } });
      ids.set(provider.code, id);
      note('provider', provider.code, 'created');
      continue;
    }
    ids.set(provider.code, row.id);
    const same =
      row.name === data.name && row.unknownReferencePolicy === data.unknownReferencePolicy && row.rateLimitPerSecond === data.rateLimitPerSecond;
    if (!same) await tx.provider.update({ where: { id: row.id }, data });
    note('provider', provider.code, same ? 'unchanged' : 'updated');
  }
  return ids;
}

interface CredentialPlan {
  providerCode: string;
  providerId: string;
  declared: CredentialDeclaration;
  /** Where the secret sits in the file, for problems. */
  at: string;
  match: ProviderCredential | undefined;
}

/** A label for reports that never shows the secret: the username, or the start of the token's hash. */
function credentialKey(providerCode: string, credential: { kind: 'TOKEN' | 'BASIC'; username: string | null; secretHash: string }): string {
  return credential.kind === 'BASIC' ? `${providerCode}/basic:${credential.username}` : `${providerCode}/token:${credential.secretHash.slice(0, 8)}`;
}

async function applyCredentials({ tx, note }: ApplyContext, providers: ProviderDeclaration[], providerIds: Map<string, string>): Promise<void> {
  const existing = await tx.providerCredential.findMany({ where: { providerId: { in: [...providerIds.values()] } }, orderBy: { createdAt: 'asc' } });
  const plans: CredentialPlan[] = [];
  const revoked: { providerCode: string; row: ProviderCredential }[] = [];
  providers.forEach((provider, i) => {
    const providerId = providerIds.get(provider.code) as string;
    const unmatched = existing.filter((row) => row.providerId === providerId);
    provider.credentials.forEach((declared, j) => {
      const index = unmatched.findIndex((row) =>
        declared.type === 'token'
          ? row.kind === 'TOKEN' && row.secretHash === hashToken(declared.token)
          : row.kind === 'BASIC' && row.username === declared.username,
      );
      const match = index >= 0 ? unmatched.splice(index, 1)[0] : undefined;
      const at = formatPath(['providers', i, 'credentials', j, declared.type === 'token' ? 'token' : 'username']);
      plans.push({ providerCode: provider.code, providerId, declared, at, match });
    });
    revoked.push(...unmatched.map((row) => ({ providerCode: provider.code, row })));
  });

  // Revocations go first, so a username or token moved between two providers of the file is free again.
  await tx.providerCredential.deleteMany({ where: { id: { in: revoked.map(({ row }) => row.id) } } });
  for (const { providerCode, row } of revoked) note('credential', credentialKey(providerCode, row), 'removed');

  await rejectCredentialsOfOtherProviders(tx, plans.filter((plan) => !plan.match));

  for (const plan of plans) {
    const { declared, match } = plan;
    const label = declared.label ?? null;
    if (!match) {
      const row =
        declared.type === 'token'
          ? { kind: 'TOKEN' as const, username: null, secretHash: hashToken(declared.token) }
          : { kind: 'BASIC' as const, username: declared.username, secretHash: await hashPassword(declared.password) };
      await tx.providerCredential.create({ data: { id: randomUUID(), providerId: plan.providerId, label, ...row } });
      note('credential', credentialKey(plan.providerCode, row), 'created');
      continue;
    }
    const data: { label?: string | null; secretHash?: string } = {};
    if (match.label !== label) data.label = label;
    // scrypt hashes are salted: verify instead of comparing, and keep the stored hash when the password is the same.
    if (declared.type === 'basic' && !(await verifyPassword(declared.password, match.secretHash))) {
      data.secretHash = await hashPassword(declared.password);
    }
    const changed = Object.keys(data).length > 0;
    if (changed) await tx.providerCredential.update({ where: { id: match.id }, data });
    note('credential', credentialKey(plan.providerCode, match), changed ? 'updated' : 'unchanged');
  }
}

/** Usernames are unique across the hub, and a token must name one provider only. */
async function rejectCredentialsOfOtherProviders(tx: Tx, fresh: CredentialPlan[]): Promise<void> {
  if (fresh.length === 0) return;
  const usernames = fresh.flatMap(({ declared }) => (declared.type === 'basic' ? [declared.username] : []));
  const tokenHashes = fresh.flatMap(({ declared }) => (declared.type === 'token' ? [hashToken(declared.token)] : []));
  const taken = await tx.providerCredential.findMany({
    where: { OR: [{ username: { in: usernames } }, { kind: 'TOKEN', secretHash: { in: tokenHashes } }] },
    include: { provider: { select: { code: true } } },
  });
  const problems = fresh.flatMap(({ declared, providerId, at }) => {
    const holder = taken.find((row) =>
      declared.type === 'basic' ? row.username === declared.username : row.kind === 'TOKEN' && row.secretHash === hashToken(declared.token),
    );
    if (!holder || holder.providerId === providerId) return [];
    return declared.type === 'basic'
      ? [`${at}: username "${declared.username}" already belongs to provider "${holder.provider.code}" (usernames are unique across all providers)`]
      : [`${at}: this token already belongs to provider "${holder.provider.code}"; every provider needs its own token`];
  });
  if (problems.length > 0) throw new TurnupError(CANNOT_APPLY, problems);
}

async function applyClients({ tx, note }: ApplyContext, clients: ClientDeclaration[]): Promise<Map<string, ClientState>> {
  const rows = await tx.client.findMany({ where: { code: { in: clients.map((client) => client.code) } }, include: { clubs: true } });
  const existing = new Map(rows.map((row) => [row.code, row]));
  const states = new Map<string, ClientState>();
  for (const client of clients) {
    const row = existing.get(client.code);
    const id = row?.id ?? randomUUID();
    if (!row) await tx.client.create({ data: { id, code: client.code, name: client.name } });
    else if (row.name !== client.name) await tx.client.update({ where: { id }, data: { name: client.name } });
    note('client', client.code, !row ? 'created' : row.name !== client.name ? 'updated' : 'unchanged');

    const clubs = new Map((row?.clubs ?? []).map((club) => [club.code, club]));
    const state: ClientState = { id, code: client.code, clubIdByCode: new Map(), clubCodeById: new Map([...clubs.values()].map((club) => [club.id, club.code])) };
    for (const club of client.clubs) {
      const stored = clubs.get(club.code);
      const clubId = stored?.id ?? randomUUID();
      if (!stored) await tx.club.create({ data: { id: clubId, clientId: id, code: club.code, name: club.name } });
      else if (stored.name !== club.name) await tx.club.update({ where: { id: clubId }, data: { name: club.name } });
      note('club', `${client.code}/${club.code}`, !stored ? 'created' : stored.name !== club.name ? 'updated' : 'unchanged');
      state.clubIdByCode.set(club.code, clubId);
      state.clubCodeById.set(clubId, club.code);
    }
    states.set(client.code, state);
  }
  return states;
}

interface GrantPlan {
  client: ClientState;
  providerId: string;
  declared: GrantDeclaration;
  at: (string | number)[];
  row: (Prisma.ProviderClientGetPayload<{ include: { clubs: true } }>) | undefined;
}

async function applyGrants(context: ApplyContext, clients: ClientDeclaration[], providerIds: Map<string, string>, states: Map<string, ClientState>): Promise<void> {
  const { tx, note } = context;
  const clientCodeById = new Map([...states.values()].map((state) => [state.id, state.code]));
  const existing = await tx.providerClient.findMany({
    where: { clientId: { in: [...clientCodeById.keys()] } },
    include: { clubs: true, provider: { select: { code: true } } },
  });
  const plans: GrantPlan[] = clients.flatMap((client, i) => {
    const state = states.get(client.code) as ClientState;
    return client.providers.map((declared, j) => {
      const providerId = providerIds.get(declared.provider) as string;
      const row = existing.find((grant) => grant.providerId === providerId && grant.clientId === state.id);
      return { client: state, providerId, declared, at: ['clients', i, 'providers', j], row };
    });
  });

  const revoked = existing.filter((grant) => !plans.some((plan) => plan.row === grant));
  await tx.providerClient.deleteMany({ where: { id: { in: revoked.map((grant) => grant.id) } } });
  for (const grant of revoked) note('grant', `${grant.provider.code}:${clientCodeById.get(grant.clientId)}`, 'removed');

  // Client IDs that change are parked on a placeholder first: two clients
  // swapping IDs in one apply would otherwise break (provider, client ID)
  // uniqueness half-way through.
  for (const plan of plans) {
    if (plan.row && plan.row.externalId !== plan.declared.clientId) {
      await tx.providerClient.update({ where: { id: plan.row.id }, data: { externalId: `~${plan.row.id}` } });
    }
  }
  await rejectClientIdsOfOtherClients(tx, plans);
  for (const plan of plans) await applyGrant(context, plan);
}

async function rejectClientIdsOfOtherClients(tx: Tx, plans: GrantPlan[]): Promise<void> {
  if (plans.length === 0) return;
  const holders = await tx.providerClient.findMany({
    where: { OR: plans.map((plan) => ({ providerId: plan.providerId, externalId: plan.declared.clientId })) },
    include: { client: { select: { code: true } } },
  });
  const problems = plans.flatMap((plan) => {
    const holder = holders.find((row) => row.providerId === plan.providerId && row.externalId === plan.declared.clientId);
    if (!holder || holder.clientId === plan.client.id) return [];
    return [
      `${formatPath([...plan.at, 'clientId'])}: provider "${plan.declared.provider}" already uses client ID "${plan.declared.clientId}" for client "${holder.client.code}", which this file does not list`,
    ];
  });
  if (problems.length > 0) throw new TurnupError(CANNOT_APPLY, problems);
}

async function applyGrant(context: ApplyContext, plan: GrantPlan): Promise<void> {
  const { tx, secretBox, note } = context;
  const { declared, row } = plan;
  const key = `${declared.provider}:${plan.client.code}`;
  // Through JSON once, so absent optional fields compare equal to what jsonb gives back.
  const agreement = jsonCopy(declared.agreement);
  const connection = declared.connection ? jsonCopy(declared.connection) : null;
  const storeConnection = () => (connection ? (encryptConnection(secretBox, connection) as Prisma.InputJsonValue) : Prisma.DbNull);

  let providerClientId: string;
  if (!row) {
    providerClientId = randomUUID();
    await tx.providerClient.create({
      data: { id: providerClientId, providerId: plan.providerId, clientId: plan.client.id, externalId: declared.clientId, agreement: agreement as Prisma.InputJsonObject, connection: storeConnection() },
    });
    note('grant', key, 'created');
  } else {
    providerClientId = row.id;
    const data: Prisma.ProviderClientUncheckedUpdateInput = {};
    if (row.externalId !== declared.clientId) data.externalId = declared.clientId;
    if (!isDeepStrictEqual(row.agreement, agreement)) data.agreement = agreement as Prisma.InputJsonObject;
    // Ciphertexts differ on every encryption (random IV): compare in clear, and keep the stored JSON when equal.
    if (!isDeepStrictEqual(readStoredConnection(context, plan, row.connection), connection)) data.connection = storeConnection();
    const changed = Object.keys(data).length > 0;
    if (changed) await tx.providerClient.update({ where: { id: row.id }, data });
    note('grant', key, changed ? 'updated' : 'unchanged');
  }
  await applyClubGrants(context, plan, providerClientId, row?.clubs ?? []);
}

function readStoredConnection({ secretBox }: ApplyContext, plan: GrantPlan, stored: Prisma.JsonValue): unknown {
  try {
    const connection = decryptConnection(secretBox, stored);
    return connection && jsonCopy(connection);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new TurnupError(CANNOT_APPLY, [`${formatPath([...plan.at, 'connection'])}: the stored connection cannot be read (${reason})`]);
  }
}

async function applyClubGrants(context: ApplyContext, plan: GrantPlan, providerClientId: string, stored: ProviderClub[]): Promise<void> {
  const { tx, note } = context;
  const keyOf = (clubCode: string | undefined) => `${plan.declared.provider}:${plan.client.code}/${clubCode}`;
  const wanted = Object.entries(plan.declared.clubs).map(([clubCode, externalId]) => ({
    clubCode,
    externalId,
    clubId: plan.client.clubIdByCode.get(clubCode) as string,
  }));
  const storedByClub = new Map(stored.map((row) => [row.clubId, row]));
  const removed = stored.filter((row) => !wanted.some((club) => club.clubId === row.clubId));
  const changed = wanted.filter((club) => storedByClub.has(club.clubId) && storedByClub.get(club.clubId)?.externalId !== club.externalId);
  const added = wanted.filter((club) => !storedByClub.has(club.clubId));

  // A changed club ID is deleted and re-inserted: two clubs swapping IDs would
  // otherwise break (grant, club ID) uniqueness half-way through.
  const deleted = [...removed.map((row) => row.id), ...changed.map((club) => storedByClub.get(club.clubId)?.id as string)];
  await tx.providerClub.deleteMany({ where: { id: { in: deleted } } });
  await tx.providerClub.createMany({
    data: [...changed, ...added].map((club) => ({ id: randomUUID(), providerClientId, clubId: club.clubId, externalId: club.externalId })),
  });

  for (const club of wanted) {
    note('club-grant', keyOf(club.clubCode), added.includes(club) ? 'created' : changed.includes(club) ? 'updated' : 'unchanged');
  }
  for (const row of removed) note('club-grant', keyOf(plan.client.clubCodeById.get(row.clubId)), 'removed');
}

function jsonCopy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
