import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadConfig } from '../../src/config.ts';

// No Docker engine on the build machines: docker-compose.yml and the
// Dockerfile are checked by reading them, against the code they deploy.

const root = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

type Service = {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: (string | number | Record<string, unknown>)[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[] };
  restart?: string;
  stop_grace_period?: string;
};

const compose = YAML.parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services ?? {};
const hub = ['api', 'worker'] as const;

function environment(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((line) => [line.split('=')[0], line.slice(line.indexOf('=') + 1)]));
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v == null ? '' : String(v)]));
}

/** Resolves Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} the way `docker compose` would with `given` set. */
function interpolate(value: string, given: Record<string, string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g, (_, name: string, op?: string, arg?: string) => {
    const set = given[name];
    if (set !== undefined && (set !== '' || !op?.startsWith(':'))) return set;
    if (op?.endsWith('-')) return arg ?? '';
    if (op?.endsWith('?')) throw new Error(`${name} is required: ${arg}`);
    return '';
  });
}

/** Environment variable names declared in src/config.ts's zod object (`NAME: z....`). */
function configVariables(): Set<string> {
  const source = read('src/config.ts');
  const start = source.indexOf('z.object({');
  expect(start, 'src/config.ts declares its environment with z.object({ ... })').toBeGreaterThan(-1);
  const block = source.slice(start, source.indexOf('\n});', start));
  const names = [...block.matchAll(/^\s+([A-Z][A-Z0-9_]*)\s*:/gm)].map((m) => m[1]);
  expect(names).toContain('DATABASE_URL');
  // Read by the delivery engine (BullMQ over Redis), outside the zod object.
  return new Set([...names, 'REDIS_URL']);
}

const commandText = (command: Service['command']) => (Array.isArray(command) ? command.join(' ') : (command ?? ''));

describe('docker-compose.yml', () => {
  it('defines postgres, redis, api and worker', () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['postgres', 'redis', 'api', 'worker']));
    expect(services.postgres.image).toMatch(/^postgres:15/);
    expect(services.redis.image).toMatch(/^redis:7/);
  });

  it('builds api and worker from this repository and runs bin/connector.js', () => {
    expect(services.api.build).toBeTruthy();
    expect(services.worker.build).toBeTruthy();
    expect(services.api.command).toEqual(['node', 'bin/connector.js', 'api']);
    expect(services.worker.command).toEqual(['node', 'bin/connector.js', 'worker']);
    for (const name of hub) {
      expect(services[name].restart, name).toBe('unless-stopped');
      expect(services[name].stop_grace_period, name).toBe('30s');
    }
  });

  it('points api and worker at the compose postgres and redis, with required secrets', () => {
    for (const name of hub) {
      const env = environment(services[name]);
      const resolved = Object.fromEntries(
        Object.entries(env)
          .filter(([k]) => !k.startsWith('CONNECTOR_'))
          .map(([k, v]) => [k, interpolate(v, {})]),
      );
      expect(new URL(resolved.DATABASE_URL).protocol, name).toMatch(/^postgres(ql)?:$/);
      expect(new URL(resolved.DATABASE_URL).hostname, name).toBe('postgres');
      expect(new URL(resolved.REDIS_URL).protocol, name).toBe('redis:');
      expect(new URL(resolved.REDIS_URL).hostname, name).toBe('redis');
      // Secrets come from the operator; compose must refuse to start without them.
      expect(env.CONNECTOR_ENCRYPTION_KEY, name).toMatch(/^\$\{CONNECTOR_ENCRYPTION_KEY:\?.+\}$/);
      expect(env.CONNECTOR_ADMIN_TOKEN, name).toMatch(/^\$\{CONNECTOR_ADMIN_TOKEN:\?.+\}$/);
      expect(() => interpolate(env.CONNECTOR_ENCRYPTION_KEY, {})).toThrow(/required/);
    }
  });

  it('uses only environment variables that src/config.ts (or the delivery engine) reads, with valid values', () => {
    const known = configVariables();
    const secrets = { CONNECTOR_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'), CONNECTOR_ADMIN_TOKEN: 'x'.repeat(32) };
    for (const name of hub) {
      const env = environment(services[name]);
      const unknown = Object.keys(env).filter((key) => !known.has(key));
      expect(unknown, `${name} sets variables the hub never reads`).toEqual([]);
      const resolved = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v, secrets)]));
      const config = loadConfig(resolved);
      expect(config.databaseUrl, name).toContain('@postgres:5432/');
    }
  });

  it('configures redis for BullMQ: noeviction and AOF persistence', () => {
    const command = commandText(services.redis.command);
    expect(command).toMatch(/--maxmemory-policy[ =]noeviction/);
    expect(command).toMatch(/--appendonly[ =]yes/);
  });

  it('runs postgres with its shared buffers from POSTGRES_SHARED_BUFFERS (128MB by default), in huge pages where the host has them', () => {
    const command = services.postgres.command as string[];
    // The image's entrypoint initialises the data and then runs a command that starts with "postgres".
    expect(command[0]).toBe('postgres');
    const settings = (given: Record<string, string>) => {
      const args = command.map((arg) => interpolate(arg, given));
      return Object.fromEntries(args.flatMap((arg, i) => (args[i - 1] === '-c' ? [arg.split('=', 2)] : [])));
    };
    expect(settings({})).toEqual({ shared_buffers: '128MB', huge_pages: 'try' });
    expect(settings({ POSTGRES_SHARED_BUFFERS: '2GB' }).shared_buffers).toBe('2GB');
  });

  it('publishes the API on 8080 and checks /ready', () => {
    const ports = (services.api.ports ?? []).map((p) => (typeof p === 'object' ? `${p.published}:${p.target}` : String(p)));
    expect(ports.some((p) => /(^|:)8080:8080$/.test(p))).toBe(true);
    expect(commandText(services.api.healthcheck?.test)).toMatch(/fetch\('http:\/\/(localhost|127\.0\.0\.1):8080\/ready'\)/);
  });

  it('starts the hub only once postgres and redis are healthy, and those have healthchecks', () => {
    for (const name of hub) {
      const dependsOn = services[name].depends_on;
      expect(Array.isArray(dependsOn), `${name}: depends_on must be the long form`).toBe(false);
      const deps = dependsOn as Record<string, { condition?: string }>;
      expect(deps.postgres?.condition, name).toBe('service_healthy');
      expect(deps.redis?.condition, name).toBe('service_healthy');
    }
    expect(commandText(services.postgres.healthcheck?.test)).toContain('pg_isready');
    expect(commandText(services.redis.healthcheck?.test)).toContain('redis-cli ping');
  });
});

describe('Dockerfile', () => {
  // Joins continuation lines, drops comments: one instruction per entry.
  const instructions = read('Dockerfile')
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const [keyword, ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
  const ignored = read('.dockerignore')
    .split(/\r?\n/)
    .map((line) => line.trim().replace(/\/$/, ''))
    .filter((line) => line && !line.startsWith('#'));

  function copySources(args: string): string[] {
    const parts = args.trim().startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/).filter((p) => !p.startsWith('--'));
    return parts.slice(0, -1);
  }
  const copies = instructions.filter((i) => i.keyword === 'COPY' && !/--from=/.test(i.args));

  it('runs bin/connector.js on Node 20 as a non-root user', () => {
    expect(instructions[0]).toEqual({ keyword: 'FROM', args: expect.stringMatching(/^node:20/) });
    const cmd = instructions.filter((i) => i.keyword === 'CMD').at(-1);
    expect(cmd?.args).toContain('bin/connector.js');
    expect(instructions.filter((i) => i.keyword === 'USER').at(-1)?.args).toBe('node');
    expect(instructions.some((i) => i.keyword === 'EXPOSE' && i.args.split(/\s+/).includes('8080'))).toBe(true);
  });

  it('copies only files that exist and that .dockerignore does not exclude', () => {
    const sources = copies.flatMap((i) => copySources(i.args));
    expect(sources.length).toBeGreaterThan(0);
    const literal = sources.filter((source) => !/[*?]/.test(source)); // globs may legitimately match nothing
    const missing = literal.filter((source) => !existsSync(path.join(root, source)));
    expect(missing, 'COPY sources missing from the repository (docker build would fail)').toEqual([]);
    const excluded = literal.filter((source) => ignored.includes(source.replace(/^\.\//, '').replace(/\/$/, '')));
    expect(excluded, 'COPY sources excluded by .dockerignore').toEqual([]);
  });

  it('has what postinstall (prisma generate) needs before npm ci, and prunes dev dependencies after', () => {
    const index = (predicate: (i: { keyword: string; args: string }) => boolean) => instructions.findIndex(predicate);
    const npmCi = index((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));
    expect(npmCi).toBeGreaterThan(-1);
    for (const needed of ['package.json', 'package-lock.json', 'prisma', 'scripts']) {
      const copied = index((i) => i.keyword === 'COPY' && copySources(i.args).some((s) => s.replace(/^\.\//, '').replace(/\/$/, '') === needed || (needed.startsWith('package') && s === 'package*.json')));
      expect(copied, `${needed} must be copied before npm ci`).toBeGreaterThan(-1);
      expect(copied, `${needed} must be copied before npm ci`).toBeLessThan(npmCi);
    }
    expect(instructions.some((i) => i.keyword === 'RUN' && /npm prune --omit=dev/.test(i.args))).toBe(true);
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'src/store/generated']));
  });

  it('builds from a lockfile that npm ci accepts (the image and CI install with it)', () => {
    // npm ci refuses a lockfile that lacks an entry package.json's tree needs,
    // other platforms' optional builds included; the dry run checks that offline.
    const run = spawnSync('npm', ['ci', '--dry-run', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 25_000, // under the test's own limit, so a hung npm fails here with its output
    });
    expect(run.status, run.stderr.split('\n').filter((line) => /npm error/.test(line)).slice(0, 8).join('\n')).toBe(0);
  });
});
