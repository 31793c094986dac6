/**
 * Group commit: calls that arrive while the event loop turns are run as one
 * statement. A batch leaves at the next turn (setImmediate), so a lone call
 * waits microseconds, not a timer; under load, while `maxInFlight` batches
 * are out, calls gather for the next one. A batch that fails is not one
 * caller's failure: its calls are run again one by one, so each gets its own
 * answer (a bad row fails only its own request).
 */
export interface BatcherOptions<I, O> {
  /** Runs a batch; the answers are in the calls' order. */
  many(items: I[]): Promise<O[]>;
  /** Runs one call: the fallback after a failed batch. */
  one(item: I): Promise<O>;
  /**
   * Calls with the same key never share a batch (two writes of one record in
   * one statement could not tell which of them won); the later one waits for
   * the next batch.
   */
  keyOf?(item: I): string;
  maxBatch?: number;
  maxInFlight?: number;
}

interface Pending<I, O> {
  item: I;
  resolve(value: O): void;
  reject(error: unknown): void;
}

export class Batcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly maxBatch: number;
  private readonly maxInFlight: number;

  constructor(private readonly options: BatcherOptions<I, O>) {
    this.maxBatch = options.maxBatch ?? 100;
    this.maxInFlight = options.maxInFlight ?? 4;
  }

  run(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0 || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      const batch = this.take();
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.schedule();
      });
    }
  }

  /** The next batch: up to maxBatch calls in arrival order, one per key. */
  private take(): Pending<I, O>[] {
    const { keyOf } = this.options;
    if (!keyOf) return this.queue.splice(0, this.maxBatch);
    const batch: Pending<I, O>[] = [];
    const rest: Pending<I, O>[] = [];
    const keys = new Set<string>();
    for (const pending of this.queue) {
      const key = keyOf(pending.item);
      if (batch.length < this.maxBatch && !keys.has(key)) {
        keys.add(key);
        batch.push(pending);
      } else rest.push(pending);
    }
    this.queue = rest;
    return batch;
  }

  private async send(batch: Pending<I, O>[]): Promise<void> {
    if (batch.length === 1) return this.sendOne(batch[0]);
    let answers: O[];
    try {
      answers = await this.options.many(batch.map((p) => p.item));
    } catch {
      await Promise.all(batch.map((p) => this.sendOne(p)));
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
