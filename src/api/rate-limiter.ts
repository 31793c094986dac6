/**
 * Per-provider request budget (token bucket, burst of one second's worth),
 * from the provider's rateLimitPerSecond in turn-up. In-process: with N API
 * processes a provider gets up to N times the rate.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; updated: number }>();

  /** Seconds to wait, or 0 when the request may go now. */
  take(key: string, perSecond: number, now = Date.now()): number {
    const bucket = this.buckets.get(key) ?? { tokens: perSecond, updated: now };
    bucket.tokens = Math.min(perSecond, bucket.tokens + ((now - bucket.updated) / 1000) * perSecond);
    bucket.updated = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
  }
}
