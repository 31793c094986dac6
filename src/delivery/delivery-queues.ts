import type { Queue } from 'bullmq';
import type { QueueBackend } from './queue-backend.ts';

export interface DeliveryJob {
  deliveryId: string;
}

/** One queue per receiving connection: a slow or failing partner never holds up another. */
export function queueNameOf(providerClientId: string): string {
  return `deliver-${providerClientId}`;
}

/**
 * One job per delivery: its ID is the delivery's, so re-adding while it
 * waits is a no-op and two attempts for one record never run at once.
 */
export function jobIdOf(deliveryId: string): string {
  return deliveryId;
}

const ADD_CHUNK = 1_000;

type NewJob = { providerClientId: string; deliveryId: string; wantedVersion: number; replays: number; entityType: string; attempts: number; backoffMs: number };

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

  async enqueue(jobs: NewJob[]): Promise<void> {
    const byQueue = new Map<string, NewJob[]>();
    for (const job of jobs) {
      const list = byQueue.get(job.providerClientId);
      if (list) list.push(job);
      else byQueue.set(job.providerClientId, [job]);
    }
    await Promise.all([...byQueue].map(([providerClientId, list]) => this.addInChunks(this.queue(providerClientId), list)));
  }

  /**
   * A reconcile may re-add a whole backlog: in chunks, so one call never
   * builds a pipeline of every job at once, nor holds Redis for it.
   */
  private async addInChunks(queue: Queue, jobs: NewJob[]): Promise<void> {
    for (let start = 0; start < jobs.length; start += ADD_CHUNK) {
      await queue.addBulk(
        jobs.slice(start, start + ADD_CHUNK).map((j) => ({
          name: j.entityType,
          data: { deliveryId: j.deliveryId } satisfies DeliveryJob,
          opts: {
            jobId: jobIdOf(j.deliveryId),
            attempts: j.attempts,
            backoff: { type: 'jittered', delay: j.backoffMs },
            // Finished jobs go: the delivery's own row and history are the record, and the
            // job ID must be free for the next version.
            removeOnComplete: true,
            removeOnFail: true,
          },
        })),
      );
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
