import type { Queue } from 'bullmq';
import type { QueueBackend } from './queue-backend.ts';

export interface DeliveryJob {
  deliveryId: string;
}

/** One queue per receiving connection: a slow or failing partner never holds up another. */
export function queueNameOf(providerClientId: string): string {
  return `deliver-${providerClientId}`;
}

/** A job per (delivery, wanted version, replay): re-adding the same is a no-op. */
export function jobIdOf(deliveryId: string, wantedVersion: number, replays: number): string {
  return `${deliveryId}-v${wantedVersion}-r${replays}`;
}

export class DeliveryQueues {
  private readonly queues = new Map<string, Queue>();

  constructor(readonly backend: QueueBackend) {}

  queue(providerClientId: string): Queue {
    let queue = this.queues.get(providerClientId);
    if (!queue) {
      queue = this.backend.createQueue(queueNameOf(providerClientId));
      this.queues.set(providerClientId, queue);
    }
    return queue;
  }

  async enqueue(
    jobs: { providerClientId: string; deliveryId: string; wantedVersion: number; replays: number; entityType: string; attempts: number; backoffMs: number }[],
  ): Promise<void> {
    const byQueue = new Map<string, typeof jobs>();
    for (const job of jobs) byQueue.set(job.providerClientId, [...(byQueue.get(job.providerClientId) ?? []), job]);
    await Promise.all(
      [...byQueue].map(([providerClientId, list]) =>
        this.queue(providerClientId).addBulk(
          list.map((j) => ({
            name: j.entityType,
            data: { deliveryId: j.deliveryId } satisfies DeliveryJob,
            opts: {
              jobId: jobIdOf(j.deliveryId, j.wantedVersion, j.replays),
              attempts: j.attempts,
              backoff: { type: 'jittered', delay: j.backoffMs },
              removeOnComplete: true,
              removeOnFail: { age: 7 * 24 * 3600 },
            },
          })),
        ),
      ),
    );
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
