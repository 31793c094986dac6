import type { DeliveryDefaults } from '../config.ts';
import type { Logger } from '../log.ts';
import type { SecretBox } from '../security/secret-box.ts';
import type { PrismaClient } from '../store/generated/client.ts';
import { servesOneSession } from '../store/sql-sessions.ts';
import { ConnectionRegistry } from './connections.ts';
import { DeliveryQueues } from './delivery-queues.ts';
import { DeliveryStore } from './delivery-store.ts';
import { OutboxRelay } from './outbox-relay.ts';
import { createQueueBackend } from './queue-backend.ts';

/**
 * For processes without the worker role (the API, the CLI): puts replayed
 * deliveries on their queues, connecting to the queue backend on first use.
 */
export function lazyRequeue(options: {
  prisma: PrismaClient;
  secretBox: SecretBox;
  databaseUrl: string;
  embedded: boolean;
  redisUrl?: string;
  defaults: DeliveryDefaults;
  logger: Logger;
}): { requeue(ids: string[]): Promise<void>; close(): Promise<void> } {
  let relay: Promise<{ relay: OutboxRelay; queues: DeliveryQueues; store: DeliveryStore }> | undefined;
  const open = async () => {
    const backend = await createQueueBackend(options);
    const queues = new DeliveryQueues(backend);
    const registry = new ConnectionRegistry(options.prisma, options.secretBox, options.defaults);
    // A replay only re-adds jobs: the store's pool (for relay runs) opens no connection here.
    const store = new DeliveryStore(options.databaseUrl, 1, await servesOneSession(options.prisma));
    return { relay: new OutboxRelay(options.prisma, store, registry, queues, options.logger, { intervalMs: options.defaults.relayIntervalMs }), queues, store };
  };
  return {
    async requeue(ids) {
      relay ??= open();
      await (await relay).relay.requeue(ids);
    },
    async close() {
      if (!relay) return;
      const { queues, store } = await relay;
      await queues.close();
      await queues.backend.close();
      await store.close();
    },
  };
}
