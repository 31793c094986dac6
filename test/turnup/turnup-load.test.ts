import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTurnupFile, parseTurnup, TurnupError } from '../../src/turnup/load-turnup.ts';

const TOKEN = 'a'.repeat(48);

const YAML_FILE = `
providers:
  - code: INTOUCH
    name: InTouch
    unknownReferences: defer
    credentials:
      - type: token
        token: \${INTOUCH_TOKEN}
        label: production
      - type: basic
        username: intouch
        password: "\${INTOUCH_PASSWORD}"
clients:
  - code: ACME
    name: Acme Fitness
    clubs:
      - { code: downtown, name: Downtown }
      - { code: uptown, name: Uptown }
    providers:
      - provider: INTOUCH
        clientId: "0042"
        clubs: { downtown: "D-1", uptown: "U-1" }
        agreement: { direction: both }
        connection:
          adapter: intouch
          url: https://api.intouch.example/v1
          auth: { type: bearer, token: "partner-\${INTOUCH_OUT_TOKEN}" }
`;

const ENV = { INTOUCH_TOKEN: TOKEN, INTOUCH_PASSWORD: 'long enough password', INTOUCH_OUT_TOKEN: 'xyz' };

/** The message of the TurnupError `parse` throws (fails the test when it does not throw one). */
function problemsOf(parse: () => unknown): string {
  try {
    parse();
  } catch (error) {
    expect(error).toBeInstanceOf(TurnupError);
    return (error as TurnupError).message;
  }
  throw new Error('expected a TurnupError');
}

/** A valid file as an object, changed by `change` (often into an invalid one), then parsed as JSON. */
function parseChanged(change: (file: any) => void): () => unknown {
  const file = {
    providers: [
      { code: 'P1', name: 'One', credentials: [{ type: 'token', token: TOKEN }, { type: 'basic', username: 'one', password: 'password-of-one' }] },
      { code: 'P2', name: 'Two' },
    ],
    clients: [
      {
        code: 'C1',
        name: 'Client one',
        clubs: [{ code: 'a', name: 'A' }, { code: 'b', name: 'B' }],
        providers: [
          { provider: 'P1', clientId: 'c1', clubs: { a: 'A1', b: 'B1' } },
          { provider: 'P2', clientId: 'c1', clubs: { a: 'A1' } },
        ],
      },
      { code: 'C2', name: 'Client two', clubs: [{ code: 'a', name: 'A' }], providers: [{ provider: 'P1', clientId: 'c2', clubs: { a: 'A1' } }] },
    ],
  };
  change(file);
  return () => parseTurnup(JSON.stringify(file), 'turnup.json', {});
}

describe('loading a turn-up file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'turnup-load-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads YAML, substituting ${NAME} from the environment anywhere in a string', () => {
    const file = parseTurnup(YAML_FILE, 'turnup.yaml', ENV);
    expect(file.providers[0]).toMatchObject({
      code: 'INTOUCH',
      unknownReferences: 'defer',
      credentials: [
        { type: 'token', token: TOKEN, label: 'production' },
        { type: 'basic', username: 'intouch', password: 'long enough password' },
      ],
    });
    expect(file.clients[0].providers[0]).toMatchObject({ clientId: '0042', clubs: { downtown: 'D-1', uptown: 'U-1' } });
    expect(file.clients[0].providers[0].connection?.auth).toEqual({ type: 'bearer', token: 'partner-xyz' });
    expect(file.clients[0].providers[0].agreement).toEqual({
      direction: 'both',
      userTypes: ['PROSPECT', 'MEMBER', 'EX_MEMBER'],
      prospects: { staffOwner: false, leadSource: false, trial: false },
    });
  });

  it('reads the same content as JSON', () => {
    const json = JSON.stringify({
      providers: [
        {
          code: 'INTOUCH',
          name: 'InTouch',
          unknownReferences: 'defer',
          credentials: [
            { type: 'token', token: '${INTOUCH_TOKEN}', label: 'production' },
            { type: 'basic', username: 'intouch', password: '${INTOUCH_PASSWORD}' },
          ],
        },
      ],
      clients: [
        {
          code: 'ACME',
          name: 'Acme Fitness',
          clubs: [{ code: 'downtown', name: 'Downtown' }, { code: 'uptown', name: 'Uptown' }],
          providers: [
            {
              provider: 'INTOUCH',
              clientId: '0042',
              clubs: { downtown: 'D-1', uptown: 'U-1' },
              agreement: { direction: 'both' },
              connection: { adapter: 'intouch', url: 'https://api.intouch.example/v1', auth: { type: 'bearer', token: 'partner-${INTOUCH_OUT_TOKEN}' } },
            },
          ],
        },
      ],
    });
    expect(parseTurnup(json, 'turnup.json', ENV)).toEqual(parseTurnup(YAML_FILE, 'turnup.yaml', ENV));
  });

  it('reads a file from disk', async () => {
    const file = path.join(dir, 'hub.yaml');
    writeFileSync(file, YAML_FILE);
    expect((await loadTurnupFile(file, ENV)).clients[0].code).toBe('ACME');
  });

  it('names every missing environment variable and where it is used', () => {
    const message = problemsOf(() => parseTurnup(YAML_FILE, 'turnup.yaml', { INTOUCH_TOKEN: TOKEN }));
    expect(message).toContain('turnup.yaml has 2 problems:');
    expect(message).toContain('providers[0].credentials[1].password: environment variable INTOUCH_PASSWORD is not set');
    expect(message).toContain('clients[0].providers[0].connection.auth.token: environment variable INTOUCH_OUT_TOKEN is not set');
  });

  it('refuses files that are neither YAML nor JSON by name, and reports syntax errors with their line', () => {
    expect(problemsOf(() => parseTurnup('{}', 'turnup.txt', {}))).toContain('must end in .yaml, .yml or .json');
    expect(problemsOf(() => parseTurnup('providers:\n  - code: [P\n', 'turnup.yaml', {}))).toMatch(/line \d+, column \d+: /);
    expect(problemsOf(() => parseTurnup('', 'turnup.yaml', {}))).toContain('(file): must be a mapping');
  });

  it('lists every schema problem with its path', () => {
    const message = problemsOf(
      parseChanged((file) => {
        file.providers[0].credentials[0].token = 'short';
        file.providers[0].credentials.push({ type: 'oauth' });
        file.providers[1].colour = 'blue';
        delete file.providers[1].name;
        file.clients[0].providers[0].clubs.b = 17;
        file.clients[0].providers[0].agreement = { direction: 'sideways' };
        file.clients[0].providers[0].connection = { adapter: 'x', url: 'ftp://example.com' };
      }),
    );
    expect(message.split('\n')).toEqual([
      'turnup.json has 7 problems:',
      '  providers[0].credentials[0].token: tokens must be at least 32 characters (e.g. `openssl rand -hex 24`)',
      '  providers[0].credentials[2].type: must be one of "token", "basic"',
      '  providers[1].name: is required',
      '  providers[1]: unknown field "colour"',
      '  clients[0].providers[0].clubs.b: must be text; put the value in quotes so YAML does not read it as a number',
      '  clients[0].providers[0].agreement.direction: must be one of "receive", "send", "both"',
      '  clients[0].providers[0].connection.url: must be an http:// or https:// URL',
    ]);
  });

  it('accepts the unchanged reference file', () => {
    expect(parseChanged(() => {})()).toMatchObject({ providers: [{ code: 'P1' }, { code: 'P2' }] });
  });

  describe('checks the references between entries', () => {
    it('refuses a provider declared twice', () => {
      expect(problemsOf(parseChanged((file) => file.providers.push({ code: 'P1', name: 'again' })))).toContain(
        'providers[2].code: provider "P1" is already declared at providers[0]',
      );
    });

    it('refuses a client declared twice', () => {
      expect(problemsOf(parseChanged((file) => file.clients.push({ code: 'C2', name: 'again', clubs: [{ code: 'x', name: 'X' }] })))).toContain(
        'clients[2].code: client "C2" is already declared at clients[1]',
      );
    });

    it('refuses a club declared twice in one client', () => {
      expect(problemsOf(parseChanged((file) => file.clients[0].clubs.push({ code: 'a', name: 'A again' })))).toContain(
        'clients[0].clubs[2].code: club "a" is already declared at clients[0].clubs[0]',
      );
    });

    it('refuses a grant of a provider the file does not declare', () => {
      expect(problemsOf(parseChanged((file) => (file.clients[1].providers[0].provider = 'GHOST')))).toContain(
        'clients[1].providers[0].provider: provider "GHOST" is not declared under providers (the file must declare every provider it uses)',
      );
    });

    it('refuses the same provider twice on one client', () => {
      expect(problemsOf(parseChanged((file) => file.clients[0].providers.push({ provider: 'P1', clientId: 'other', clubs: {} })))).toContain(
        'clients[0].providers[2].provider: provider "P1" is already listed for client "C1" at clients[0].providers[0]',
      );
    });

    it('refuses a granted club that is not a club of the client', () => {
      expect(problemsOf(parseChanged((file) => (file.clients[0].providers[1].clubs.downtown = 'D9')))).toContain(
        'clients[0].providers[1].clubs.downtown: "downtown" is not a club of client "C1" (its clubs: a, b)',
      );
    });

    it('refuses one provider club ID for two clubs of a client', () => {
      expect(problemsOf(parseChanged((file) => (file.clients[0].providers[0].clubs.b = 'A1')))).toContain(
        'clients[0].providers[0].clubs.b: provider "P1" already uses club ID "A1" for club "a" of this client; each club needs its own ID',
      );
    });

    it('refuses one provider client ID for two clients', () => {
      expect(problemsOf(parseChanged((file) => (file.clients[1].providers[0].clientId = 'c1')))).toContain(
        'clients[1].providers[0].clientId: provider "P1" already uses client ID "c1" for client "C1" (clients[0].providers[0].clientId)',
      );
    });

    it('refuses a basic username used twice, even across providers', () => {
      const message = problemsOf(
        parseChanged((file) => (file.providers[1].credentials = [{ type: 'basic', username: 'one', password: 'another password' }])),
      );
      expect(message).toContain(
        'providers[1].credentials[0].username: username "one" is already used at providers[0].credentials[1] (usernames are unique across all providers)',
      );
    });

    it('refuses a token used twice, without printing it', () => {
      const message = problemsOf(parseChanged((file) => (file.providers[1].credentials = [{ type: 'token', token: TOKEN }])));
      expect(message).toContain('providers[1].credentials[0].token: the same token is already used at providers[0].credentials[0]');
      expect(message).not.toContain(TOKEN);
    });

    it('refuses a connection for a provider that only sends', () => {
      const message = problemsOf(
        parseChanged((file) => (file.clients[1].providers[0].connection = { adapter: 'generic', url: 'https://partner.example' })),
      );
      expect(message).toContain(
        'clients[1].providers[0].connection: provider "P1" only sends for this client (agreement.direction: send), so the hub never calls it',
      );
    });

    it('reports every reference problem at once', () => {
      const message = problemsOf(
        parseChanged((file) => {
          file.providers.push({ code: 'P2', name: 'again' });
          file.clients[1].providers[0].provider = 'GHOST';
        }),
      );
      expect(message.split('\n')[0]).toBe('turnup.json has 2 problems:');
    });
  });
});
