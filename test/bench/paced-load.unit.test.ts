import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { mergeFailures, pacedLoad, type LoadResult } from '../../bench/ingest.ts';

// The latency targets and the soak count failed requests; a count alone does not say what to look for.
describe('the evenly paced load', () => {
  it('says what failed (answer status or socket error) and when, besides counting it', async () => {
    let served = 0;
    const server = http.createServer((req, res) => {
      served += 1;
      req.resume();
      if (served % 5 === 0) return void req.socket.destroy(); // no answer: the client sees a reset
      res.writeHead(served % 5 === 1 ? 503 : 200, { 'content-type': 'text/plain' }).end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const result = await pacedLoad(url, 'token', { seconds: 0.5, connections: 1, rate: 100 });
      expect(result.requests).toBe(50);
      const failures = result.failures ?? {};
      expect(failures['HTTP 503']?.count).toBe(result.non2xx);
      expect(result.non2xx).toBeGreaterThanOrEqual(9);
      const socketErrors = Object.entries(failures).filter(([what]) => !what.startsWith('HTTP '));
      expect(socketErrors.map(([what]) => what)).toEqual(['ECONNRESET']);
      expect(socketErrors[0][1].count).toBe(result.errors);
      expect(result.errors).toBeGreaterThanOrEqual(9);
      // Every fifth request fails each way, 10 ms apart: the first within the first ~0.1 s, the last near the end.
      for (const seen of Object.values(failures)) {
        expect(seen.firstAt).toBeLessThanOrEqual(0.2);
        expect(seen.lastAt).toBeGreaterThanOrEqual(0.3);
        expect(seen.lastAt).toBeLessThan(5);
      }
    } finally {
      server.close();
    }
  });

  it('merges the failures of several loads (rounds): counts added, times kept only where one load had the failure', () => {
    const load = (failures: LoadResult['failures']): LoadResult => ({ requestsPerSecond: 1, requests: 1, p50: 1, p99: 1, non2xx: 0, errors: 0, failures });
    const first = { 'HTTP 503': { count: 2, firstAt: 4, lastAt: 5 } };
    const merged = mergeFailures([load(first), load(undefined), load({ 'HTTP 503': { count: 1, firstAt: 1, lastAt: 2 }, ECONNRESET: { count: 3, firstAt: 7, lastAt: 9 } })]);
    expect(merged).toEqual({ 'HTTP 503': { count: 3 }, ECONNRESET: { count: 3, firstAt: 7, lastAt: 9 } });
    expect(first['HTTP 503'].count).toBe(2); // the loads' own figures are left as they were
  });
});
