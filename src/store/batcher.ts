/**
 * Group commit: calls that arrive while the event loop turns are run as one
 * statement. A batch leaves at the next turn (setImmediate), so a lone call
 * waits microseconds, not a timer. While a batch is out, calls gather for the
 * next one, which leaves when it returns: one statement, one commit for all
 * the calls of its round trip. Another batch leaves beside it only when
 * gathering cannot help (it is full) or the one out has been out for
 * `spareLaneAfterMs` (a row locked by another transaction, a slow commit),
 * so a stuck batch delays the others by that much, not by its whole wait;
 * at most `maxInFlight` are out. Calls with the same key never run
 * at the same time, in one batch or in two: two statements writing one
 * record could not tell which won, and could lock each other. A batch that
 * fails because of its rows (`oneByOneAfter`) is not one caller's failure:
 * its calls are run again one by one, so each gets its own answer (a bad row
 * fails only its own request); any other failure (the database is gone) is
 * every caller's answer, as it would have been without batching.
 */
export interface BatcherOptions<I, O> {
  /** Runs a batch; the answers are in the calls' order. */
  many(items: I[]): Promise<O[]>;
  /** Runs one call: the fallback after a failed batch. */
  one(item: I): Promise<O>;
  /** Calls with the same key run one after another, in arrival order. */
  keyOf?(item: I): string;
  /** Whether a failed batch is retried one call at a time (a row's fault), or fails every call. */
  oneByOneAfter?(error: unknown): boolean;
  maxBatch?: number;
  maxInFlight?: number;
  /** How long a batch may be out before a batch that is not full leaves beside it (ms). */
  spareLaneAfterMs?: number;
}

interface Pending<I, O> {
  item: I;
  resolve(value: O): void;
  reject(error: unknown): void;
}

export class Batcher<I, O> {
  private queue: Pending<I, O>[] = [];
  /** Keys of the calls in batches that are out. */
  private readonly busy = new Set<string>();
  private scheduled = false;
  /** Set while calls wait for a spare lane (spareLaneAfterMs). */
  private laneTimer: NodeJS.Timeout | undefined;
  /** When each batch that is out left (performance.now()): one entry per batch out. */
  private readonly outSince: number[] = [];
  private readonly maxBatch: number;
  private readonly maxInFlight: number;
  private readonly spareLaneAfterMs: number;

  constructor(private readonly options: BatcherOptions<I, O>) {
    this.maxBatch = options.maxBatch ?? 100;
    this.maxInFlight = options.maxInFlight ?? 4;
    this.spareLaneAfterMs = options.spareLaneAfterMs ?? 50;
  }

  run(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.queue.length === 0 || this.outSince.length >= this.maxInFlight) return;
    const wait = this.laneWait();
    if (wait > 0) {
      // A returning batch schedules again (sooner, or from the batches still out).
      this.laneTimer ??= setTimeout(() => {
        this.laneTimer = undefined;
        this.schedule();
      }, wait);
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** How long the waiting calls should gather before the next batch leaves (ms; 0 or less: now). */
  private laneWait(): number {
    if (this.outSince.length === 0 || this.queue.length >= this.maxBatch) return 0;
    return Math.max(...this.outSince) + this.spareLaneAfterMs - performance.now();
  }

  private clearLaneTimer(): void {
    clearTimeout(this.laneTimer);
    this.laneTimer = undefined;
  }

  private flush(): void {
    this.clearLaneTimer();
    while (this.queue.length > 0 && this.outSince.length < this.maxInFlight) {
      if (this.laneWait() > 0) return this.schedule();
      const { batch, keys } = this.take();
      if (batch.length === 0) return; // every waiting call's key is out; a returning batch schedules again
      const since = performance.now();
      this.outSince.push(since);
      for (const key of keys) this.busy.add(key);
      void this.send(batch).finally(() => {
        this.outSince.splice(this.outSince.indexOf(since), 1);
        for (const key of keys) this.busy.delete(key);
        // A lane timer was set from the batches out then: the waiting calls now wait only for those still out.
        this.clearLaneTimer();
        this.schedule();
      });
    }
  }

  /** The next batch: up to maxBatch calls in arrival order, at most one per key, none whose key is out. */
  private take(): { batch: Pending<I, O>[]; keys: string[] } {
    const { keyOf } = this.options;
    if (!keyOf) return { batch: this.queue.splice(0, this.maxBatch), keys: [] };
    const batch: Pending<I, O>[] = [];
    const rest: Pending<I, O>[] = [];
    const keys = new Set<string>();
    // A key seen waiting keeps its later calls waiting too, so one key's calls keep their order.
    const held = new Set<string>();
    for (const pending of this.queue) {
      const key = keyOf(pending.item);
      if (batch.length < this.maxBatch && !keys.has(key) && !held.has(key) && !this.busy.has(key)) {
        keys.add(key);
        batch.push(pending);
      } else {
        held.add(key);
        rest.push(pending);
      }
    }
    this.queue = rest;
    return { batch, keys: [...keys] };
  }

  private async send(batch: Pending<I, O>[]): Promise<void> {
    if (batch.length === 1) return this.sendOne(batch[0]);
    let answers: O[];
    try {
      answers = await this.options.many(batch.map((p) => p.item));
    } catch (error) {
      if (this.options.oneByOneAfter?.(error)) await Promise.all(batch.map((p) => this.sendOne(p)));
      else for (const p of batch) p.reject(error);
      return;
    }
    batch.forEach((p, i) => p.resolve(answers[i]));
  }

  private async sendOne(pending: Pending<I, O>): Promise<void> {
    try {
      pending.resolve(await this.options.one(pending.item));
    } catch (error) {
      pending.reject(error);
    }
  }
}
