/**
 * Per-connection circuit breaker. After `threshold` consecutive retryable
 * failures the partner is left alone for a cool-down that doubles up to
 * `maxCooldownMs`; jobs wait instead of burning attempts against a partner
 * that is down. The first call after the cool-down decides: success closes,
 * failure reopens.
 */
export class CircuitBreaker {
  private failures = 0;
  private openUntil = 0;
  private cooldownMs: number;
  /** A half-open probe is in flight: other jobs wait for its result. */
  private probing = false;

  constructor(
    private readonly threshold = 5,
    private readonly baseCooldownMs = 5_000,
    private readonly maxCooldownMs = 60_000,
  ) {
    this.cooldownMs = baseCooldownMs;
  }

  /**
   * Milliseconds until a call may go (0: go now). When half-open, exactly
   * one caller gets 0 and becomes the probe; the others wait for it.
   */
  waitMs(now = Date.now()): number {
    const open = Math.max(0, this.openUntil - now);
    if (open > 0) return open;
    if (this.failures < this.threshold) return 0;
    if (this.probing) return 1_000;
    this.probing = true;
    return 0;
  }

  get state(): 'closed' | 'open' | 'half-open' {
    if (this.failures < this.threshold) return 'closed';
    return this.openUntil > Date.now() ? 'open' : 'half-open';
  }

  success(): void {
    this.probing = false;
    this.failures = 0;
    this.openUntil = 0;
    this.cooldownMs = this.baseCooldownMs;
  }

  failure(now = Date.now()): void {
    this.probing = false;
    this.failures += 1;
    if (this.failures >= this.threshold) {
      this.openUntil = now + this.cooldownMs;
      this.cooldownMs = Math.min(this.maxCooldownMs, this.cooldownMs * 2);
    }
  }
}
