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

  constructor(
    private readonly threshold = 5,
    private readonly baseCooldownMs = 5_000,
    private readonly maxCooldownMs = 60_000,
  ) {
    this.cooldownMs = baseCooldownMs;
  }

  /** Milliseconds until calls may go again (0: closed or half-open). */
  waitMs(now = Date.now()): number {
    return Math.max(0, this.openUntil - now);
  }

  get state(): 'closed' | 'open' | 'half-open' {
    if (this.failures < this.threshold) return 'closed';
    return this.waitMs() > 0 ? 'open' : 'half-open';
  }

  success(): void {
    this.failures = 0;
    this.openUntil = 0;
    this.cooldownMs = this.baseCooldownMs;
  }

  failure(now = Date.now()): void {
    this.failures += 1;
    if (this.failures >= this.threshold) {
      this.openUntil = now + this.cooldownMs;
      this.cooldownMs = Math.min(this.maxCooldownMs, this.cooldownMs * 2);
    }
  }
}
