import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../src/delivery/circuit-breaker.ts';

describe('the per-connection circuit breaker', () => {
  it('opens after the threshold of consecutive failures and lets calls go again after the cool-down', () => {
    const breaker = new CircuitBreaker(3, 1_000, 8_000);
    const t = 1_000_000;
    breaker.failure(t);
    breaker.failure(t);
    expect(breaker.waitMs(t)).toBe(0);
    breaker.failure(t);
    expect(breaker.waitMs(t)).toBe(1_000);
    expect(breaker.waitMs(t + 400)).toBe(600);
  });

  it('sends exactly one probe when half-open, and doubles the cool-down when it fails', () => {
    const breaker = new CircuitBreaker(1, 1_000, 8_000);
    const t = 1_000_000;
    breaker.failure(t);
    expect(breaker.waitMs(t + 1_000)).toBe(0); // the probe
    expect(breaker.waitMs(t + 1_000)).toBeGreaterThan(0); // everyone else waits for it
    breaker.failure(t + 1_100);
    expect(breaker.waitMs(t + 1_100)).toBe(2_000);
  });

  it('closes on the probe success', () => {
    const breaker = new CircuitBreaker(1, 1_000, 8_000);
    breaker.failure(0);
    expect(breaker.waitMs(1_000)).toBe(0);
    breaker.success();
    expect(breaker.state).toBe('closed');
    expect(breaker.waitMs(1_000)).toBe(0);
    expect(breaker.waitMs(1_000)).toBe(0);
  });
});
