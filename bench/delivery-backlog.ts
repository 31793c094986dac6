import { DeliveryEngine } from '../src/delivery/delivery-engine.ts';
import { createLogger } from '../src/log.ts';
import { benchEnv, REDIS_URL } from './bench-env.ts';

/**
 * Deliveries per second from a backlog: N changed records already committed
 * with their outbox events, then a delivery engine started against them,
 * until the fake partner has every record.
 */
export async function deliveryBacklog(options: { database: 'postgres' | 'pglite'; queue: 'redis' | 'postgres'; events: number }) {
  const env = await benchEnv(options.database);
  try {
    // The backlog, written as the API would have: records, A's links, outbox events.
    await env.prisma.$executeRawUnsafe(`
      INSERT INTO user_record (id, "clientId", "clubId", "userType", "userStatus", firstname, lastname, email, "createdBy", "createdDate", "modifiedBy", "modifiedDate", "updatedAt")
      SELECT gen_random_uuid(), '${env.clientId}', '${env.clubId}', 'PROSPECT', 'ACTIVE', 'First' || g, 'Backlog', 'p' || g || '@example.com', 'BENCH_A', now(), 'BENCH_A', now(), now()
      FROM generate_series(1, ${options.events}) g`);
    await env.prisma.$executeRawUnsafe(`
      INSERT INTO outbox_event (id, "entityType", "entityId", "clientId", version, "originProviderId")
      SELECT gen_random_uuid(), 'USER', id, "clientId", 1, '${env.providerA}' FROM user_record WHERE "clientId" = '${env.clientId}'`);
    const started = performance.now();
    const engine = await DeliveryEngine.start({
      prisma: env.prisma,
      secretBox: env.secretBox,
      databaseUrl: env.databaseUrl,
      embedded: options.database === 'pglite',
      redisUrl: options.queue === 'redis' ? REDIS_URL : undefined,
      defaults: { concurrency: 50, attempts: 5, backoffMs: 500, timeoutMs: 10_000, relayIntervalMs: 50, reconcileIntervalMs: 60_000 },
      logger: createLogger('warn'),
    });
    const deadline = Date.now() + 30 * 60_000;
    let dead = 0;
    while (env.fake.counts.applied + dead < options.events && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      if (env.fake.counts.applied % 10 === 0) dead = await env.prisma.delivery.count({ where: { status: 'DEAD' } });
    }
    const seconds = (performance.now() - started) / 1000;
    await engine.stop();
    const delivered = await env.prisma.delivery.count({ where: { status: 'DELIVERED' } });
    return { events: options.events, delivered, seconds, perSecond: delivered / seconds };
  } finally {
    await env.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [database = 'postgres', queue = 'redis', events = '10000'] = process.argv.slice(2);
  const result = await deliveryBacklog({ database: database as 'postgres', queue: queue as 'redis', events: Number(events) });
  console.log(JSON.stringify(result));
  process.exit(0);
}
