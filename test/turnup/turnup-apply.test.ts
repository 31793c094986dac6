import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { hashToken, verifyPassword } from '../../src/security/credential-hash.ts';
import { generateKey, SecretBox } from '../../src/security/secret-box.ts';
import { createPrisma } from '../../src/store/database.ts';
import { applyTurnup, decryptConnection, formatTurnupReport, type TurnupReport } from '../../src/turnup/apply-turnup.ts';
import { TurnupError } from '../../src/turnup/load-turnup.ts';
import { turnupSchema, type TurnupFile } from '../../src/turnup/turnup-schema.ts';

const prisma = createPrisma(inject('databaseUrl'));
const secretBox = new SecretBox(generateKey());
const deps = { prisma, secretBox };

afterAll(async () => {
  await prisma.$disconnect();
});

/** Two providers, two clients, a connection with secrets: every test gets its own codes. */
function scenario() {
  const id = randomUUID().slice(0, 8);
  const codes = { P: `P_${id}`, Q: `Q_${id}`, C: `C_${id}`, D: `D_${id}` };
  const token = randomBytes(24).toString('hex');
  const username = `u_${id}`;
  const connectionPassword = `conn-pw-${id}`;
  const file = turnupSchema.parse({
    providers: [
      {
        code: codes.P,
        name: 'Partner P',
        credentials: [
          { type: 'token', token, label: 'main' },
          { type: 'basic', username, password: 'correct horse battery' },
        ],
      },
      { code: codes.Q, name: 'Partner Q', unknownReferences: 'defer', rateLimitPerSecond: 5 },
    ],
    clients: [
      {
        code: codes.C,
        name: 'Client C',
        clubs: [
          { code: 'downtown', name: 'Downtown' },
          { code: 'uptown', name: 'Uptown' },
        ],
        providers: [
          {
            provider: codes.P,
            clientId: `pc-${id}`,
            clubs: { downtown: `pd-${id}`, uptown: `pu-${id}` },
            agreement: { direction: 'both', prospects: { leadSource: true } },
            connection: {
              adapter: 'generic',
              url: 'https://partner.example/api',
              auth: { type: 'basic', username: 'hub', password: connectionPassword },
              signingSecret: `signing-${id}-0123456789`,
              delivery: { attempts: 5 },
            },
          },
          { provider: codes.Q, clientId: `qc-${id}`, clubs: { downtown: `qd-${id}` } },
        ],
      },
      {
        code: codes.D,
        name: 'Client D',
        clubs: [{ code: 'main', name: 'Main' }],
        providers: [{ provider: codes.P, clientId: `pdc-${id}`, clubs: { main: `pm-${id}` } }],
      },
    ],
  });
  return { id, codes, token, username, connectionPassword, file };
}

function edit(file: TurnupFile, change: (copy: TurnupFile) => void): TurnupFile {
  const copy = structuredClone(file);
  change(copy);
  return copy;
}

/** Every row a turn-up writes, with connections decrypted, ordered so two snapshots compare. */
async function snapshot(file: TurnupFile) {
  const providers = await prisma.provider.findMany({
    where: { code: { in: file.providers.map((provider) => provider.code) } },
    orderBy: { code: 'asc' },
    include: { credentials: { orderBy: { secretHash: 'asc' } } },
  });
  const clients = await prisma.client.findMany({
    where: { code: { in: file.clients.map((client) => client.code) } },
    orderBy: { code: 'asc' },
    include: {
      clubs: { orderBy: { code: 'asc' } },
      providers: { orderBy: { externalId: 'asc' }, include: { clubs: { orderBy: { externalId: 'asc' } } } },
    },
  });
  return {
    providers,
    clients: clients.map((client) => ({
      ...client,
      providers: client.providers.map((grant) => ({ ...grant, decrypted: decryptConnection(secretBox, grant.connection) })),
    })),
  };
}

function actions(report: TurnupReport, wanted: 'created' | 'updated' | 'unchanged' | 'removed') {
  return report.changes.filter((change) => change.action === wanted).map(({ entity, key }) => `${entity} ${key}`);
}

async function grantOf(providerCode: string, clientCode: string) {
  return prisma.providerClient.findFirst({
    where: { provider: { code: providerCode }, client: { code: clientCode } },
    include: { clubs: { include: { club: true } } },
  });
}

describe('applying a turn-up file', () => {
  it('creates every provider, credential, client, club and grant the first time', async () => {
    const { codes, file, token, username } = scenario();
    const report = await applyTurnup(deps, file);
    expect(actions(report, 'created')).toEqual([
      `provider ${codes.P}`,
      `provider ${codes.Q}`,
      `credential ${codes.P}/token:${hashToken(token).slice(0, 8)}`,
      `credential ${codes.P}/basic:${username}`,
      `client ${codes.C}`,
      `club ${codes.C}/downtown`,
      `club ${codes.C}/uptown`,
      `client ${codes.D}`,
      `club ${codes.D}/main`,
      `grant ${codes.P}:${codes.C}`,
      `club-grant ${codes.P}:${codes.C}/downtown`,
      `club-grant ${codes.P}:${codes.C}/uptown`,
      `grant ${codes.Q}:${codes.C}`,
      `club-grant ${codes.Q}:${codes.C}/downtown`,
      `grant ${codes.P}:${codes.D}`,
      `club-grant ${codes.P}:${codes.D}/main`,
    ]);
    expect(report.changes).toHaveLength(16);
    const q = await prisma.provider.findUniqueOrThrow({ where: { code: codes.Q } });
    expect(q).toMatchObject({ name: 'Partner Q', unknownReferencePolicy: 'DEFER', rateLimitPerSecond: 5 });
    const grant = await grantOf(codes.P, codes.C);
    expect(grant?.agreement).toEqual({ direction: 'both', userTypes: ['PROSPECT', 'MEMBER', 'EX_MEMBER'], prospects: { staffOwner: false, leadSource: true, trial: false } });
  });

  it('changes nothing when the same file is applied twice', async () => {
    const { file } = scenario();
    await applyTurnup(deps, file);
    const before = await snapshot(file);
    const second = await applyTurnup(deps, file);
    expect(second.changes.length).toBe(16);
    expect(second.changes.every((change) => change.action === 'unchanged')).toBe(true);
    expect(await snapshot(file)).toEqual(before);
    expect(formatTurnupReport(second).split('\n').at(-1)).toBe('0 created, 0 updated, 16 unchanged, 0 removed');
  });

  it('reports exactly the club whose name changed as updated', async () => {
    const { codes, file } = scenario();
    await applyTurnup(deps, file);
    const report = await applyTurnup(deps, edit(file, (next) => (next.clients[0].clubs[1].name = 'Uptown North')));
    expect(actions(report, 'updated')).toEqual([`club ${codes.C}/uptown`]);
    expect(actions(report, 'created').concat(actions(report, 'removed'))).toEqual([]);
    const club = await prisma.club.findFirstOrThrow({ where: { client: { code: codes.C }, code: 'uptown' } });
    expect(club.name).toBe('Uptown North');
  });

  it('revokes a credential the file no longer lists', async () => {
    const { codes, file, token } = scenario();
    await applyTurnup(deps, file);
    const report = await applyTurnup(deps, edit(file, (next) => next.providers[0].credentials.splice(0, 1)));
    expect(actions(report, 'removed')).toEqual([`credential ${codes.P}/token:${hashToken(token).slice(0, 8)}`]);
    expect(await prisma.providerCredential.count({ where: { secretHash: hashToken(token) } })).toBe(0);
    expect(await prisma.providerCredential.count({ where: { provider: { code: codes.P } } })).toBe(1);
  });

  it('stores tokens as their hash and passwords as scrypt, never in clear', async () => {
    const { codes, file, token, username } = scenario();
    await applyTurnup(deps, file);
    const rows = await prisma.providerCredential.findMany({ where: { provider: { code: codes.P } } });
    expect(JSON.stringify(rows)).not.toContain(token);
    expect(JSON.stringify(rows)).not.toContain('correct horse battery');
    expect(rows.find((row) => row.kind === 'TOKEN')).toMatchObject({ secretHash: hashToken(token), label: 'main', username: null });
    const basic = rows.find((row) => row.kind === 'BASIC');
    expect(basic?.username).toBe(username);
    expect(await verifyPassword('correct horse battery', basic?.secretHash ?? '')).toBe(true);
  });

  it('updates a credential whose password or label changed, keeping its row', async () => {
    const { codes, file, username } = scenario();
    await applyTurnup(deps, file);
    const before = await prisma.providerCredential.findUniqueOrThrow({ where: { username } });
    const report = await applyTurnup(
      deps,
      edit(file, (next) => {
        next.providers[0].credentials[1] = { type: 'basic', username, password: 'a brand new password', label: 'ops' };
        next.providers[0].credentials[0].label = 'renamed';
      }),
    );
    expect(actions(report, 'updated')).toEqual([expect.stringMatching(`credential ${codes.P}/token:`), `credential ${codes.P}/basic:${username}`]);
    const after = await prisma.providerCredential.findUniqueOrThrow({ where: { username } });
    expect(after.id).toBe(before.id);
    expect(after.label).toBe('ops');
    expect(await verifyPassword('a brand new password', after.secretHash)).toBe(true);
  });

  it('removes the club grant of a club dropped from a provider\'s clubs, keeping the club', async () => {
    const { codes, file } = scenario();
    await applyTurnup(deps, file);
    const report = await applyTurnup(deps, edit(file, (next) => delete next.clients[0].providers[0].clubs.uptown));
    expect(actions(report, 'removed')).toEqual([`club-grant ${codes.P}:${codes.C}/uptown`]);
    const grant = await grantOf(codes.P, codes.C);
    expect(grant?.clubs.map((row) => row.club.code)).toEqual(['downtown']);
    expect(await prisma.club.count({ where: { client: { code: codes.C } } })).toBe(2);
  });

  it('revokes the grant of a provider removed from a client, with its club grants', async () => {
    const { codes, file } = scenario();
    await applyTurnup(deps, file);
    const grant = await grantOf(codes.Q, codes.C);
    const report = await applyTurnup(deps, edit(file, (next) => next.clients[0].providers.splice(1, 1)));
    expect(actions(report, 'removed')).toEqual([`grant ${codes.Q}:${codes.C}`]);
    expect(await grantOf(codes.Q, codes.C)).toBeNull();
    expect(await prisma.providerClub.count({ where: { providerClientId: grant?.id } })).toBe(0);
    expect(await prisma.provider.count({ where: { code: codes.Q } })).toBe(1);
  });

  it('leaves clubs that the file no longer lists in place', async () => {
    const { codes, file } = scenario();
    await applyTurnup(deps, file);
    const report = await applyTurnup(
      deps,
      edit(file, (next) => {
        next.clients[0].clubs.splice(1, 1);
        delete next.clients[0].providers[0].clubs.uptown;
      }),
    );
    const clubsOfC = report.changes.filter((change) => change.entity === 'club' && change.key.startsWith(`${codes.C}/`));
    expect(clubsOfC.map((change) => change.key)).toEqual([`${codes.C}/downtown`]);
    expect(actions(report, 'removed')).toEqual([`club-grant ${codes.P}:${codes.C}/uptown`]);
    expect(await prisma.club.count({ where: { client: { code: codes.C }, code: 'uptown' } })).toBe(1);
  });

  it('swaps the provider IDs of two clubs and of two clients in one apply', async () => {
    const { codes, file, id } = scenario();
    await applyTurnup(deps, file);
    const report = await applyTurnup(
      deps,
      edit(file, (next) => {
        next.clients[0].providers[0].clubs = { downtown: `pu-${id}`, uptown: `pd-${id}` };
        next.clients[0].providers[0].clientId = `pdc-${id}`;
        next.clients[1].providers[0].clientId = `pc-${id}`;
      }),
    );
    expect(actions(report, 'updated')).toEqual([
      `grant ${codes.P}:${codes.C}`,
      `club-grant ${codes.P}:${codes.C}/downtown`,
      `club-grant ${codes.P}:${codes.C}/uptown`,
      `grant ${codes.P}:${codes.D}`,
    ]);
    const grant = await grantOf(codes.P, codes.C);
    expect(grant?.externalId).toBe(`pdc-${id}`);
    expect(Object.fromEntries(grant?.clubs.map((row) => [row.club.code, row.externalId]) ?? [])).toEqual({ downtown: `pu-${id}`, uptown: `pd-${id}` });
    expect((await grantOf(codes.P, codes.D))?.externalId).toBe(`pc-${id}`);
  });

  it('stores connection secrets encrypted and gives them back decrypted', async () => {
    const { codes, file, connectionPassword, id } = scenario();
    await applyTurnup(deps, file);
    const grant = await grantOf(codes.P, codes.C);
    const stored = JSON.stringify(grant?.connection);
    expect(stored).toContain('enc:v1:');
    expect(stored).not.toContain(connectionPassword);
    expect(stored).not.toContain(`signing-${id}`);
    expect(stored).toContain('https://partner.example/api');
    const connection = decryptConnection(secretBox, grant?.connection);
    expect(connection).toMatchObject({
      adapter: 'generic',
      auth: { type: 'basic', username: 'hub', password: connectionPassword },
      signingSecret: `signing-${id}-0123456789`,
      delivery: { attempts: 5 },
    });
    expect(decryptConnection(secretBox, (await grantOf(codes.Q, codes.C))?.connection)).toBeNull();
    expect(() => decryptConnection(new SecretBox(generateKey()), grant?.connection)).toThrow(/cannot be decrypted/);
  });

  it('re-encrypts a connection only when its clear content changed', async () => {
    const { codes, file } = scenario();
    await applyTurnup(deps, file);
    const report = await applyTurnup(
      deps,
      edit(file, (next) => {
        const connection = next.clients[0].providers[0].connection;
        if (connection?.auth.type === 'basic') connection.auth.password = 'rotated-password';
      }),
    );
    expect(actions(report, 'updated')).toEqual([`grant ${codes.P}:${codes.C}`]);
    const connection = decryptConnection(secretBox, (await grantOf(codes.P, codes.C))?.connection);
    expect(connection?.auth).toEqual({ type: 'basic', username: 'hub', password: 'rotated-password' });
  });

  it('reports the changes of a dry run without writing anything', async () => {
    const { codes, file } = scenario();
    const first = await applyTurnup(deps, file, { dryRun: true });
    expect(actions(first, 'created')).toHaveLength(16);
    expect(await prisma.provider.count({ where: { code: { in: [codes.P, codes.Q] } } })).toBe(0);
    expect(await prisma.client.count({ where: { code: { in: [codes.C, codes.D] } } })).toBe(0);

    await applyTurnup(deps, file);
    const before = await snapshot(file);
    const changed = edit(file, (next) => {
      next.clients[0].clubs[0].name = 'Renamed';
      next.clients[0].providers.splice(1, 1);
      next.providers[0].credentials = [];
    });
    const dry = await applyTurnup(deps, changed, { dryRun: true });
    expect(actions(dry, 'updated')).toEqual([`club ${codes.C}/downtown`]);
    expect(actions(dry, 'removed')).toHaveLength(3);
    expect(await snapshot(file)).toEqual(before);
  });

  it('refuses a username that belongs to a provider outside the file, writing nothing', async () => {
    const { username, file } = scenario();
    await applyTurnup(deps, file);
    const other = scenario();
    const stolen = edit(other.file, (next) => (next.providers[0].credentials[1] = { type: 'basic', username, password: 'another password' }));
    const error = await applyTurnup(deps, { providers: stolen.providers.slice(0, 1), clients: [] }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TurnupError);
    expect((error as Error).message).toContain(`providers[0].credentials[1].username: username "${username}" already belongs to provider "${file.providers[0].code}"`);
    expect(await prisma.provider.count({ where: { code: other.codes.P } })).toBe(0);
  });

  it('moves a username between two providers of the same file', async () => {
    const { codes, username, file } = scenario();
    await applyTurnup(deps, file);
    const moved = edit(file, (next) => {
      next.providers[0].credentials = next.providers[0].credentials.filter((credential) => credential.type === 'token');
      next.providers[1].credentials = [{ type: 'basic', username, password: 'correct horse battery' }];
    });
    const report = await applyTurnup(deps, moved);
    expect(actions(report, 'removed')).toEqual([`credential ${codes.P}/basic:${username}`]);
    expect(actions(report, 'created')).toEqual([`credential ${codes.Q}/basic:${username}`]);
    const row = await prisma.providerCredential.findUniqueOrThrow({ where: { username }, include: { provider: true } });
    expect(row.provider.code).toBe(codes.Q);
  });

  it('refuses a client ID the provider already uses for a client outside the file', async () => {
    const { codes, file, id } = scenario();
    await applyTurnup(deps, file);
    const onlyC = { providers: file.providers, clients: [edit(file, (next) => (next.clients[0].providers[0].clientId = `pdc-${id}`)).clients[0]] };
    await expect(applyTurnup(deps, onlyC)).rejects.toThrow(
      `clients[0].providers[0].clientId: provider "${codes.P}" already uses client ID "pdc-${id}" for client "${codes.D}", which this file does not list`,
    );
    expect((await grantOf(codes.P, codes.C))?.externalId).toBe(`pc-${id}`);
  });

  it('refuses a file built in code whose grants name an undeclared provider', async () => {
    const { codes, file } = scenario();
    await expect(applyTurnup(deps, { ...file, providers: file.providers.slice(1) })).rejects.toThrow(
      `clients[0].providers[0].provider: provider "${codes.P}" is not declared under providers`,
    );
    expect(await prisma.provider.count({ where: { code: codes.Q } })).toBe(0);
  });

  it('formats one line per change and a summary', () => {
    const text = formatTurnupReport({
      changes: [
        { entity: 'provider', key: 'P', action: 'created' },
        { entity: 'club', key: 'C/x', action: 'updated' },
        { entity: 'grant', key: 'P:C', action: 'unchanged' },
      ],
    });
    expect(text.split('\n')).toEqual([
      'created   provider   P',
      'updated   club       C/x',
      'unchanged grant      P:C',
      '1 created, 1 updated, 1 unchanged, 0 removed',
    ]);
  });
});
