import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { QueueBackend } from './queue-backend.ts';

/**
 * A job's data: one delivery (`deliveryId`), or a bundle of deliveries the
 * relay queued together (`deliveryIds`), delivered one after another.
 * `attemptsBefore`: attempts a bundle made before handing the delivery to
 * a job of its own (they count towards the connection's attempts).
 */
export interface DeliveryJob {
  deliveryId?: string;
  deliveryIds?: string[];
  attemptsBefore?: number;
}

/** The deliveries a job carries, in order. */
export function deliveriesOf(job: DeliveryJob): string[] {
  return job.deliveryIds ?? (job.deliveryId ? [job.deliveryId] : []);
}

/** One queue per receiving connection: a slow or failing partner never holds up another. */
export function queueNameOf(providerClientId: string): string {
  return `deliver-${providerClientId}`;
}

/**
 * The job that delivers a pending delivery: its bundle's (the delivery's
 * `jobId`), or one of its own whose ID is the delivery's. Each pending
 * delivery has exactly one such ID, so re-adding while the job waits is a
 * no-op and two attempts for one record never run at once: a delivery's
 * `jobId` changes only when no job is working on it (the relay gives a new
 * one only to a delivery that was not pending, a bundle hands a failed
 * delivery to a job of its own before it leaves it), and a job delivers only
 * the deliveries whose job it is (DeliveryStore.claim).
 */
export function jobIdOf(delivery: { id: string; jobId: string | null }): string {
  return delivery.jobId ?? delivery.id;
}

/** A new bundle's job ID (BullMQ's custom IDs must not be integers nor hold ':'). */
export function newBundleId(): string {
  return `bundle-${randomUUID()}`;
}

/**
 * How many deliveries a relay run puts in one job: one each while the
 * connection's workers can run them all at once, so a handful of changes go
 * out side by side; more (up to MAX_BUNDLE) once a run brings more than the
 * workers can take, as a backlog does. A job costs the queue a few round
 * trips and scripts (add, take, finish) whatever it carries: a bundle of ten
 * costs them once for ten deliveries, which then go one after another.
 * Never for a connection with an agreed rate: BullMQ's limiter counts jobs,
 * and a bundle would send ten deliveries for one.
 */
export function bundleSize(deliveries: number, settings: { concurrency: number; ratePerSecond?: number }): number {
  if (settings.ratePerSecond) return 1;
  return Math.max(1, Math.min(MAX_BUNDLE, Math.ceil(deliveries / Math.max(1, settings.concurrency))));
}

const MAX_BUNDLE = 10;

const ADD_CHUNK = 1_000;

/** A pending delivery to put on its connection's queue. */
export interface QueuedDelivery {
  providerClientId: string;
  deliveryId: string;
  entityType: string;
  jobId: string | null;
  attempts: number;
  backoffMs: number;
}

interface NewJob {
  /** The record's type (USER, STAFF, LEAD_SOURCE) for a job of one delivery, 'bundle' for a bundle. */
  name: string;
  jobId: string;
  data: DeliveryJob;
  attempts: number;
  backoffMs: number;
  delayMs?: number;
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

  /**
   * Adds the jobs of these deliveries: one per bundle (with the bundle's
   * deliveries among these), one per delivery of its own.
   */
  async enqueue(deliveries: QueuedDelivery[]): Promise<void> {
    const byQueue = new Map<string, Map<string, NewJob>>();
    for (const d of deliveries) {
      let jobs = byQueue.get(d.providerClientId);
      if (!jobs) byQueue.set(d.providerClientId, (jobs = new Map()));
      const jobId = jobIdOf({ id: d.deliveryId, jobId: d.jobId });
      const job = jobs.get(jobId);
      if (job) {
        job.data.deliveryIds!.push(d.deliveryId);
        continue;
      }
      const data = d.jobId ? { deliveryIds: [d.deliveryId] } : { deliveryId: d.deliveryId };
      jobs.set(jobId, { name: d.jobId ? 'bundle' : d.entityType, jobId, data, attempts: d.attempts, backoffMs: d.backoffMs });
    }
    await Promise.all([...byQueue].map(([providerClientId, jobs]) => this.addInChunks(this.queue(providerClientId), [...jobs.values()])));
  }

  /**
   * A delivery a bundle gave up on after a failed attempt, in a job of its
   * own (the delivery's `jobId` already says so), retried after `delayMs`
   * with the attempts the connection has left.
   */
  async handOver(providerClientId: string, deliveryId: string, entityType: string, options: { attemptsBefore: number; attemptsLeft: number; backoffMs: number; delayMs: number }): Promise<void> {
    await this.addInChunks(this.queue(providerClientId), [
      { name: entityType, jobId: deliveryId, data: { deliveryId, attemptsBefore: options.attemptsBefore }, attempts: options.attemptsLeft, backoffMs: options.backoffMs, delayMs: options.delayMs },
    ]);
  }

  /**
   * A reconcile may re-add a whole backlog: in chunks, so one call never
   * builds a pipeline of every job at once, nor holds Redis for it.
   */
  private async addInChunks(queue: Queue, jobs: NewJob[]): Promise<void> {
    for (let start = 0; start < jobs.length; start += ADD_CHUNK) {
      await queue.addBulk(
        jobs.slice(start, start + ADD_CHUNK).map((j) => ({
          name: j.name,
          data: j.data,
          opts: {
            jobId: j.jobId,
            attempts: j.attempts,
            backoff: { type: 'jittered', delay: j.backoffMs },
            ...(j.delayMs ? { delay: j.delayMs } : {}),
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
