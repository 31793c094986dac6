import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { benchEnv, type BenchEnv } from './bench-env.ts';
import { CLI, startHubChild, type HubChild } from './hub-process.ts';
import { cpuSeconds, cpuSpent } from './process-cpu.ts';

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
  /** Requests answered. */
  requests: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /**
   * What failed, by answer status or socket error, with the seconds into
   * the run of the first and last (evenly paced loads only; no times when
   * merged from several loads): a failure the summary counts should say
   * what it was.
   */
  failures?: Record<string, { count: number; firstAt?: number; lastAt?: number }>;
}

/**
 * The failures of several loads together, counts added. Times are kept only
 * for a failure seen in one load: seconds into different loads do not compare.
 */
export function mergeFailures(loads: LoadResult[]): NonNullable<LoadResult['failures']> {
  const merged: NonNullable<LoadResult['failures']> = {};
  for (const [what, seen] of loads.flatMap((l) => Object.entries(l.failures ?? {}))) {
    const before = merged[what];
    merged[what] = before ? { count: before.count + seen.count } : { ...seen };
  }
  return merged;
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

/** One request of a paced load (the i-th): a path under the hub's URL, and a body for a POST. */
export type PacedRequest = (i: number) => { method: 'GET' | 'POST'; path: string; body?: string };

/**
 * Records at a steady rate, evenly paced: request i is due at start + i/rate
 * whatever became of the earlier ones (open loop), over at most `connections`
 * keep-alive connections, and its latency is counted from when it was due, so
 * time spent waiting for a free connection counts too. autocannon's rate mode
 * is not used for this: each of its connections sends its whole per-second
 * quota back to back at the start of every second, so "1,000/s" arrives as
 * bursts at full speed and its percentiles are those of a saturated server.
 */
export async function pacedLoad(
  url: string,
  token: string,
  options: { seconds: number; connections: number; rate: number; request?: PacedRequest },
): Promise<LoadResult> {
  const target = new URL(`${url}/connector/api/2011-11/user`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections });
  const total = Math.round(options.rate * options.seconds);
  const interval = 1000 / options.rate;
  const latencies = new Float64Array(total);
  const run = randomBytes(4).toString('hex');
  const body = userBody();
  // By default a new record each time (POST), as the ingest figures want.
  const requestOf = options.request ?? ((i: number) => ({ method: 'POST' as const, path: target.pathname, body: body.replace('[<id>]', `paced-${run}-${i}`) }));
  let sent = 0;
  let finished = 0;
  let non2xx = 0;
  let errors = 0;
  const failures: NonNullable<LoadResult['failures']> = {};
  const failed = (what: string) => {
    const at = Math.round((performance.now() - start) / 100) / 10;
    const seen = (failures[what] ??= { count: 0, firstAt: at, lastAt: at });
    seen.count += 1;
    seen.lastAt = at;
  };
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const settle = (i: number, due: number) => {
      latencies[i] = performance.now() - due;
      if (++finished === total) resolve();
    };
    const send = (i: number) => {
      const due = start + i * interval;
      const { method, path, body: payload = '' } = requestOf(i);
      const req = http.request(
        {
          host: target.hostname,
          port: target.port,
          path,
          method,
          agent,
          timeout: 30_000,
          headers: {
            authorization: `Bearer ${token}`,
            ...(method === 'POST' ? { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(payload) } : {}),
          },
        },
        (res) => {
          if (res.statusCode! < 200 || res.statusCode! >= 300) {
            non2xx += 1;
            failed(`HTTP ${res.statusCode}`);
          }
          res.resume();
          res.once('end', () => settle(i, due));
        },
      );
      req.once('timeout', () => req.destroy(new Error('timed out')));
      req.once('error', (error: NodeJS.ErrnoException) => {
        errors += 1;
        failed(error.code ?? error.message);
        settle(i, due);
      });
      req.end(method === 'POST' ? payload : undefined);
    };
    const pump = () => {
      const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1);
      while (sent < due) send(sent++);
      if (sent < total) setTimeout(pump, 1);
    };
    pump();
  });
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  latencies.sort();
  const percentile = (p: number) => latencies[Math.min(total - 1, Math.floor(p * total))];
  return { requestsPerSecond: total / seconds, requests: total, p50: percentile(0.5), p99: percentile(0.99), non2xx, errors, failures };
}

/** The figures of an autocannon run that the benchmarks report. */
export function loadResultOf(result: autocannon.Result): LoadResult {
  return {
    requestsPerSecond: result.requests.average,
    requests: result.requests.total,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}

/**
 * A load on a server, with the CPU time the server's processes spent per
 * request answered (µs; undefined without /proc): the cost of a request
 * whatever else kept the machine's cores busy meanwhile.
 */
export async function measuredLoad(
  serverPid: number,
  url: string,
  token: string | undefined,
  options: { seconds: number; connections: number },
): Promise<LoadResult & { cpuMicrosPerRequest: number | undefined }> {
  const before = cpuSeconds({ server: { tree: serverPid } });
  const result = await load(url, token, options);
  const { server } = cpuSpent(before, cpuSeconds({ server: { tree: serverPid } }));
  return { ...result, cpuMicrosPerRequest: server === undefined || result.requests === 0 ? undefined : (server * 1e6) / result.requests };
}

/** The bare baseline server; `appServer`: served as the hub serves its app (see baseline-server.ts). */
export async function startBaseline(cpus?: string, options: { appServer?: boolean } = {}): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const script = path.resolve(import.meta.dirname, 'baseline-server.ts');
  const args = ['--import', 'tsx', script, ...(options.appServer ? ['--app-server'] : [])];
  const child = cpus ? spawn('taskset', ['-c', cpus, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve) => child.stdout!.once('data', (c) => resolve(`http://127.0.0.1:${JSON.parse(String(c)).port}`)));
  // taskset execs node, so the child's pid is the server's.
  return { url, pid: child.pid!, stop: async () => void (child.kill('SIGTERM'), await new Promise((r) => child.once('exit', r))) };
}

/** The hub's API (no worker) in `processes` processes on the given cores, on the bench's database, with its default settings (database pool included). */
export async function startIngestHub(env: BenchEnv, cpus?: string, processes = API_PROCESSES): Promise<HubChild> {
  return startHubChild(
    {
      DATABASE_URL: env.databaseUrl,
      CONNECTOR_ENCRYPTION_KEY: env.key,
      CONNECTOR_ADMIN_TOKEN: 'x'.repeat(32),
      LOG_LEVEL: 'info',
      CONNECTOR_API_PROCESSES: String(processes),
    },
    { command: 'api', cpus },
  );
}

/**
 * The embedded default, as `npm start` runs it: `connector start` (API and
 * worker in one process, PGlite inside it) on a fresh data folder, with
 * provider BENCH_A turned up through the CLI against the running hub.
 *
 * `cpus` pins the hub. With `databaseCpus` the hub starts on every core, so
 * its database takes a thread of its own as it does for a user with more
 * than one core, and then every thread but the database's is pinned to
 * `cpus` and the database's to `databaseCpus`: as the hub of the PostgreSQL
 * figures is pinned beside a database server that is not.
 */
export async function startEmbeddedHub(cpus?: string, databaseCpus?: string): Promise<HubChild & { token: string }> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'connector-bench-embedded-'));
  const token = randomBytes(24).toString('hex');
  const env = { CONNECTOR_DATA_DIR: dataDir, BENCH_TOKEN: token };
  const hub = await startHubChild(env, { command: 'start', cpus: databaseCpus ? undefined : cpus });
  if (databaseCpus) {
    const { databaseThread } = JSON.parse(readFileSync(path.join(dataDir, 'embedded-postgres.json'), 'utf8')) as { databaseThread?: number };
    if (!databaseThread) {
      await hub.stop();
      throw new Error('the embedded hub did not give its database a thread of its own (one core?): it cannot be pinned this way');
    }
    for (const tid of readdirSync(`/proc/${hub.child.pid}/task`).map(Number)) {
      execFileSync('taskset', ['-p', '-c', tid === databaseThread ? databaseCpus : (cpus ?? databaseCpus), String(tid)], { stdio: 'ignore' });
    }
  }
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
