import type { DeliveryDefaults } from '../config.ts';
import type { Logger } from '../log.ts';
import type { SecretBox } from '../security/secret-box.ts';
import type { PrismaClient } from '../store/generated/client.ts';
import { ConnectionRegistry } from './connections.ts';
import { DeliveryQueues } from './delivery-queues.ts';
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
  let relay: Promise<{ relay: OutboxRelay; queues: DeliveryQueues }> | undefined;
  const open = async () => {
    const backend = await createQueueBackend(options);
    const queues = new DeliveryQueues(backend);
    const registry = new ConnectionRegistry(options.prisma, options.secretBox, options.defaults);
    return { relay: new OutboxRelay(options.prisma, registry, queues, options.logger, { intervalMs: options.defaults.relayIntervalMs }), queues };
  };
  return {
    async requeue(ids) {
      relay ??= open();
      await (await relay).relay.requeue(ids);
    },
    async close() {
      if (!relay) return;
      const { queues } = await relay;
      await queues.close();
      await queues.backend.close();
    },
  };
}
