import { spawn } from 'node:child_process';
import net from 'node:net';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { assertNoEviction, RedisPolicyError } from '../../src/delivery/queue-backend.ts';
import { eventually, REDIS_TEST_URL } from '../support/delivery-rig.ts';

const children: ReturnType<typeof spawn>[] = [];
afterAll(() => children.forEach((c) => c.kill('SIGKILL')));

async function redisWithPolicy(policy: string): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  children.push(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', policy], { stdio: 'ignore' }));
  await eventually(
    () => new Promise<boolean>((resolve) => net.connect(port, '127.0.0.1', function (this: net.Socket) { this.end(); resolve(true); }).on('error', () => resolve(false))),
    10_000,
  );
  return `redis://127.0.0.1:${port}`;
}

describe.runIf(inject('databaseKind') === 'postgres')('the Redis queue backend', () => {
  it('refuses a Redis that may evict keys (an evicted key is a lost delivery), naming the policy', async () => {
    const url = await redisWithPolicy('allkeys-lru');
    await expect(assertNoEviction(url)).rejects.toThrow(RedisPolicyError);
    await expect(assertNoEviction(url)).rejects.toThrow('maxmemory-policy is allkeys-lru');
  });

  it('accepts the machine Redis with noeviction', async () => {
    await expect(assertNoEviction(REDIS_TEST_URL)).resolves.toBeUndefined();
  });
});
