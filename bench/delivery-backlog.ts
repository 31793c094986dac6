import { DeliveryEngine } from '../src/delivery/delivery-engine.ts';
import { createLogger } from '../src/log.ts';
import { benchEnv, checkpoint, REDIS_URL } from './bench-env.ts';
import { startFakePartnerProcess } from './fake-partner-process.ts';
import { cpuSeconds, cpuSpent, type Part } from './process-cpu.ts';

/** This process's CPU seconds so far (user + system). */
const processCpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

/**
 * Deliveries per second from a backlog: N changed records already committed
 * with their outbox events, then a delivery engine started against them,
 * until the fake partner (a process of its own, like a real partner) has
 * every record. The rate of every 5 s goes to stderr, so a slowdown as the
 * run goes on shows.
 */
export async function deliveryBacklog(options: { database: 'postgres' | 'pglite'; queue: 'redis' | 'postgres'; events: number }) {
  const partner = await startFakePartnerProcess();
  const env = await benchEnv(options.database, {}, partner.url).catch(async (error) => {
    await partner.stop();
    throw error;
  });
  try {
    // What ran before (the soak's 300,000 saves, an earlier run's deliveries) left dirty buffers, whose
    // checkpoint PostgreSQL spreads over minutes: written out now, before this run's own writes.
    await checkpoint((sql) => env.prisma.$executeRawUnsafe(sql));
    // The backlog, written as the API would have: records, A's links, outbox events.
    await env.prisma.$executeRawUnsafe(`
      INSERT INTO user_record (id, "clientId", "clubId", "userType", "userStatus", firstname, lastname, email, "createdBy", "createdDate", "modifiedBy", "modifiedDate", "updatedAt")
      SELECT gen_random_uuid(), '${env.clientId}', '${env.clubId}', 'PROSPECT', 'ACTIVE', 'First' || g, 'Backlog', 'p' || g || '@example.com', 'BENCH_A', now(), 'BENCH_A', now(), now()
      FROM generate_series(1, ${options.events}) g`);
    await env.prisma.$executeRawUnsafe(`
      INSERT INTO outbox_event (id, "entityType", "entityId", "clientId", version, "originProviderId")
      SELECT gen_random_uuid(), 'USER', id, "clientId", 1, '${env.providerA}' FROM user_record WHERE "clientId" = '${env.clientId}'`);
    const parts: Record<string, Part> = {
      postgres: { program: 'postgres' },
      ...(options.queue === 'redis' ? { redis: { program: 'redis-server' } } : {}),
      partner: { tree: partner.pid },
    };
    const cpuBefore = { hub: processCpuSeconds(), ...cpuSeconds(parts) };
    const started = performance.now();
    const engine = await DeliveryEngine.start({
      prisma: env.prisma,
      secretBox: env.secretBox,
      databaseUrl: env.databaseUrl,
      embedded: options.database === 'pglite',
      redisUrl: options.queue === 'redis' ? REDIS_URL : undefined,
      defaults: { concurrency: 50, attempts: 5, backoffMs: 500, timeoutMs: 10_000, relayIntervalMs: 50, reconcileIntervalMs: 60_000, eventRetentionMs: 7 * 24 * 3_600_000 },
      logger: createLogger('warn'),
    });
    const deadline = Date.now() + 30 * 60_000;
    let dead = 0;
    let applied = 0;
    let last = { at: started, applied: 0 };
    while (applied + dead < options.events && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      applied = (await partner.counts()).applied;
      if (applied % 10 === 0) dead = await env.prisma.delivery.count({ where: { status: 'DEAD' } });
      const now = performance.now();
      if (now - last.at >= 5_000) {
        const rate = ((applied - last.applied) * 1000) / (now - last.at);
        console.error(`${((now - started) / 1000).toFixed(0).padStart(4)} s  ${String(applied).padStart(7)} delivered  ${rate.toFixed(0).padStart(5)}/s`);
        last = { at: now, applied };
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const spent = cpuSpent(cpuBefore, { hub: processCpuSeconds(), ...cpuSeconds(parts) });
    await engine.stop();
    const delivered = await env.prisma.delivery.count({ where: { status: 'DELIVERED' } });
    const perDelivery = (cpu: number | undefined) => (cpu === undefined || delivered === 0 ? undefined : (cpu * 1e6) / delivered);
    return {
      events: options.events,
      delivered,
      seconds,
      perSecond: delivered / seconds,
      /**
       * CPU time per delivery (µs) of each process taking part: the hub (the engine, in this process),
       * PostgreSQL and, with Redis queues, Redis (every process of theirs on this machine; undefined
       * when they run elsewhere), and the fake partner.
       */
      cpuMicrosPerDelivery: Object.fromEntries(Object.entries(spent).map(([part, cpu]) => [part, perDelivery(cpu)])),
    };
  } finally {
    await env.close();
    await partner.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [database = 'postgres', queue = 'redis', events = '10000'] = process.argv.slice(2);
  const result = await deliveryBacklog({ database: database as 'postgres', queue: queue as 'redis', events: Number(events) });
  console.log(JSON.stringify(result));
  process.exit(0);
}
