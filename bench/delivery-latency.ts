import http from 'node:http';
import { benchEnv, percentile, REDIS_URL } from './bench-env.ts';
import { startHubChild } from './hub-process.ts';

/**
 * End-to-end latency: POST at A (the hub's API, a separate process running
 * API and worker) until the fake partner B receives the record, at a steady
 * rate. Reports p50/p99 over every record.
 */
export async function deliveryLatency(options: { queue: 'redis' | 'postgres'; ratePerSecond: number; seconds: number }) {
  const received = new Map<string, number>();
  const env = await benchEnv('postgres', {
    onRequest: (method, _path, body) => {
      if (method !== 'POST') return;
      const ref = /"externalRef":"([^"]+)"/.exec(body)?.[1];
      if (ref && !received.has(ref)) received.set(ref, performance.now());
    },
  });
  const hub = await startHubChild({
    DATABASE_URL: env.databaseUrl,
    CONNECTOR_ENCRYPTION_KEY: env.key,
    CONNECTOR_ADMIN_TOKEN: 'x'.repeat(32),
    ...(options.queue === 'redis' ? { REDIS_URL } : {}),
  }).catch(async (error) => {
    await env.close();
    throw error;
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const sent = new Map<string, number>();
  let failures = 0;
  const post = (i: number) =>
    new Promise<void>((resolve) => {
      const body = `<user><providerInfo><identifier>BENCH_A</identifier><clientID>A1</clientID><clubID>A-club</clubID><recordID>lat-${i}</recordID></providerInfo><userInfo><firstname>P${i}</firstname><lastname>Latency</lastname><userStatus>ACTIVE</userStatus><userType>PROSPECT</userType><email>p${i}@example.com</email></userInfo></user>`;
      const started = performance.now();
      const req = http.request(`${hub.url}/connector/api/2011-11/user`, {
        method: 'POST',
        agent,
        headers: { authorization: `Bearer ${env.token}`, 'content-type': 'application/xml' },
      });
      req.on('response', (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          const uuid = /<uuid>([^<]+)<\/uuid>/.exec(text)?.[1];
          if (res.statusCode === 200 && uuid) sent.set(uuid, started);
          else failures += 1;
          resolve();
        });
      });
      req.on('error', () => {
        failures += 1;
        resolve();
      });
      req.end(body);
    });
  try {
    const total = Math.round(options.ratePerSecond * options.seconds);
    const interval = 1000 / options.ratePerSecond;
    const start = performance.now();
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = start + i * interval;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      inflight.push(post(i));
    }
    await Promise.all(inflight);
    const deadline = Date.now() + 60_000;
    while (received.size < sent.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const latencies = [...sent].filter(([uuid]) => received.has(uuid)).map(([uuid, at]) => received.get(uuid)! - at).sort((a, b) => a - b);
    return { sent: sent.size, received: latencies.length, failures, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
  } finally {
    agent.destroy();
    await hub.stop();
    await env.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [queue = 'redis', rate = '200', seconds = '10'] = process.argv.slice(2);
  console.log(JSON.stringify(await deliveryLatency({ queue: queue as 'redis', ratePerSecond: Number(rate), seconds: Number(seconds) })));
  process.exit(0);
}
