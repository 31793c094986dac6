import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { deliveryBacklog } from './delivery-backlog.ts';
import { deliveryLatency } from './delivery-latency.ts';
import { benchEnv, machine } from './bench-env.ts';
import { load, startBaseline, startIngestHub } from './ingest.ts';

/**
 * `npm run bench` runs every benchmark and prints figure, value, target and
 * whether it is met, then writes bench/RESULTS.md. `--quick` (CI smoke)
 * runs each for a few seconds on small numbers: it proves the benchmarks
 * work, its figures are not the targets' measure.
 */
const quick = process.argv.includes('--quick');
interface Row {
  figure: string;
  value: string;
  target: string;
  pass: boolean | undefined;
}
const rows: Row[] = [];
const record = (figure: string, value: number, unit: string, target?: { op: '>=' | '<='; limit: number; text: string }) => {
  const pass = target ? (target.op === '>=' ? value >= target.limit : value <= target.limit) : undefined;
  rows.push({ figure, value: `${value.toFixed(unit === 'ratio' ? 2 : 0)} ${unit === 'ratio' ? '' : unit}`.trim(), target: target?.text ?? '—', pass });
  console.log(`${figure}: ${value.toFixed(2)} ${unit}${target ? ` (target ${target.text}: ${pass ? 'pass' : 'FAIL'})` : ''}`);
};

// Ingest: the hub's API against a bare Express + fast-xml-parser server, same load, same core.
{
  const seconds = quick ? 3 : 15;
  const baseline = await startBaseline('0');
  const base = await load(baseline.url, undefined, { seconds, connections: 50 });
  await baseline.stop();
  const env = await benchEnv('postgres');
  const hub = await startIngestHub(env, '0');
  const ingest = await load(hub.url, env.token, { seconds, connections: 50 });
  const rss = hub.rssMiB();
  const steady = await load(hub.url, env.token, { seconds, connections: 50, rate: 1000 });
  await hub.stop();
  await env.close();
  record('ingest baseline (Express + parse, no storage), requests/s', base.requestsPerSecond, 'req/s');
  record('ingest, durable POST /user (PostgreSQL), requests/s', ingest.requestsPerSecond, 'req/s');
  record('ingest / baseline', ingest.requestsPerSecond / base.requestsPerSecond, 'ratio', { op: '>=', limit: 0.7, text: '≥ 0.70' });
  record('ingest errors (non-2xx + socket)', ingest.non2xx + ingest.errors, 'requests', { op: '<=', limit: 0, text: '0' });
  record('ingest p99 at 1,000 records/s', steady.p99, 'ms', { op: '<=', limit: 50, text: '< 50 ms' });
  record('hub RSS during ingest', rss, 'MiB', { op: '<=', limit: 300, text: '< 300 MiB' });
}

// Delivery from a backlog, both queue backends.
{
  const events = quick ? 1_000 : 100_000;
  const redis = await deliveryBacklog({ database: 'postgres', queue: 'redis', events });
  record(`deliveries/s from a ${events.toLocaleString('en')}-event backlog (Redis queues)`, redis.perSecond, '/s', { op: '>=', limit: 2000, text: '≥ 2,000/s' });
  const pgEvents = quick ? 1_000 : 20_000;
  const postgres = await deliveryBacklog({ database: 'postgres', queue: 'postgres', events: pgEvents });
  record(`deliveries/s from a ${pgEvents.toLocaleString('en')}-event backlog (PostgreSQL queues)`, postgres.perSecond, '/s');
}

// End-to-end latency at a steady 200 records/s, both backends.
{
  const seconds = quick ? 3 : 20;
  for (const queue of ['redis', 'postgres'] as const) {
    const result = await deliveryLatency({ queue, ratePerSecond: 200, seconds });
    record(`POST at A -> received at B, p50 at 200 records/s (${queue} queues)`, result.p50, 'ms');
    record(`POST at A -> received at B, p99 at 200 records/s (${queue} queues)`, result.p99, 'ms');
    record(`records not received (${queue} queues)`, result.sent - result.received + result.failures, 'records', { op: '<=', limit: 0, text: '0' });
  }
}

const commit = (() => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
})();
const table = ['| Figure | Value | Target | Met |', '|---|---|---|---|', ...rows.map((r) => `| ${r.figure} | ${r.value} | ${r.target} | ${r.pass === undefined ? '' : r.pass ? 'yes' : 'no'} |`)].join('\n');
console.log(`\n${table}`);
if (!quick) {
  writeFileSync(
    path.resolve(import.meta.dirname, 'RESULTS.md'),
    `# Benchmark results\n\n${new Date().toISOString().slice(0, 10)}, commit ${commit}, ${machine()}.\nProduced by \`npm run bench\` (bench/run.ts); PostgreSQL 15 and Redis 7 on the same machine.\n\n${table}\n`,
  );
}
process.exit(0);
