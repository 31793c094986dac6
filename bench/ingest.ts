import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { benchEnv, type BenchEnv } from './bench-env.ts';
import { CLI, startHubChild, type HubChild } from './hub-process.ts';

/** A user save with the seed's field set; autocannon replaces [<id>] with a fresh ID per request. */
export function userBody(): string {
  return (
    '<user><providerInfo><identifier>BENCH_A</identifier><clientID>A1</clientID><clubID>A-club</clubID><recordID>[<id>]</recordID></providerInfo>' +
    '<userInfo><firstname>Foo</firstname><lastname>Bar</lastname><birthdate>1972-03-12</birthdate><gender>M</gender><userStatus>ACTIVE</userStatus>' +
    '<userType>PROSPECT</userType><address1>1234 Fake St</address1><address2>Apartment 1a</address2><city>Spuzzum</city><zipcode>12345</zipcode>' +
    '<state>WA</state><country>US</country><mobile>555-555-5555</mobile><email>foo@bar.com</email><homePhone>555-666-6666</homePhone>' +
    '<workPhone>555-777-7777</workPhone><company>Acme Widgets</company></userInfo></user>'
  );
}

export interface LoadResult {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

export async function load(url: string, token: string | undefined, options: { seconds: number; connections: number; rate?: number }): Promise<LoadResult> {
  const result = await autocannon({
    url: `${url}/connector/api/2011-11/user`,
    method: 'POST',
    headers: { 'content-type': 'application/xml', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: userBody(),
    idReplacement: true,
    connections: options.connections,
    duration: options.seconds,
    overallRate: options.rate,
  });
  return loadResultOf(result);
}

/** The figures of an autocannon run that the benchmarks report. */
export function loadResultOf(result: autocannon.Result): LoadResult {
  return {
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}

export async function startBaseline(cpus?: string): Promise<{ url: string; stop(): Promise<void> }> {
  const script = path.resolve(import.meta.dirname, 'baseline-server.ts');
  const args = ['--import', 'tsx', script];
  const child = cpus ? spawn('taskset', ['-c', cpus, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve) => child.stdout!.once('data', (c) => resolve(`http://127.0.0.1:${JSON.parse(String(c)).port}`)));
  return { url, stop: async () => void (child.kill('SIGTERM'), await new Promise((r) => child.once('exit', r))) };
}

/** The hub's API (no worker) in `processes` processes on the given cores, on the bench's database. */
export async function startIngestHub(env: BenchEnv, cpus?: string, processes = API_PROCESSES): Promise<HubChild> {
  return startHubChild(
    {
      DATABASE_URL: env.databaseUrl,
      CONNECTOR_ENCRYPTION_KEY: env.key,
      CONNECTOR_ADMIN_TOKEN: 'x'.repeat(32),
      LOG_LEVEL: 'info',
      CONNECTOR_DB_POOL_SIZE: String(Math.ceil(20 / processes)),
      CONNECTOR_API_PROCESSES: String(processes),
    },
    { command: 'api', cpus },
  );
}

/**
 * The embedded default, as `npm start` runs it: `connector start` (API and
 * worker in one process, PGlite inside it) on a fresh data folder, with
 * provider BENCH_A turned up through the CLI against the running hub.
 */
export async function startEmbeddedHub(cpus?: string): Promise<HubChild & { token: string }> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'connector-bench-embedded-'));
  const token = randomBytes(24).toString('hex');
  const env = { CONNECTOR_DATA_DIR: dataDir, BENCH_TOKEN: token };
  const hub = await startHubChild(env, { command: 'start', cpus });
  const turnup = path.join(dataDir, 'bench-turnup.yaml');
  writeFileSync(
    turnup,
    [
      'providers:',
      '  - { code: BENCH_A, name: A, credentials: [{ type: token, token: "${BENCH_TOKEN}" }] }',
      'clients:',
      '  - code: bench',
      '    name: Bench',
      '    clubs: [{ code: main, name: Main }]',
      '    providers: [{ provider: BENCH_A, clientId: A1, clubs: { main: A-club } }]',
      '',
    ].join('\n'),
  );
  const applied = spawnSync(process.execPath, [CLI, 'turnup', 'apply', turnup], { env: { ...process.env, ...env }, encoding: 'utf8' });
  if (applied.status !== 0) {
    await hub.stop();
    throw new Error(`turn-up of the embedded hub failed: ${applied.stderr}`);
  }
  return {
    ...hub,
    token,
    async stop() {
      await hub.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** API processes of the benchmarked hub (BENCH_API_PROCESSES), one by default. */
export const API_PROCESSES = Number(process.env.BENCH_API_PROCESSES ?? 1);

if (import.meta.url === `file://${process.argv[1]}`) {
  const seconds = Number(process.argv[2] ?? 10);
  const cpus = process.env.BENCH_CPUS ?? '0';
  const baseline = await startBaseline(cpus);
  const base = await load(baseline.url, undefined, { seconds, connections: 50 });
  await baseline.stop();
  const env = await benchEnv('postgres');
  const hub = await startIngestHub(env, cpus);
  const hubResult = await load(hub.url, env.token, { seconds, connections: 50 });
  console.log(JSON.stringify({ baseline: base, hub: hubResult, ratio: hubResult.requestsPerSecond / base.requestsPerSecond, rssMiB: hub.rssMiB() }));
  await hub.stop();
  await env.close();
  process.exit(0);
}
