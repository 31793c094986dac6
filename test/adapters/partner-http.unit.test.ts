import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartnerError } from '../../adapters/contract.ts';
import { SignedPartnerHttp } from '../../src/delivery/partner-http.ts';
import { connectionSchema } from '../../src/turnup/turnup-schema.ts';

/** A partner whose answer never ends: 1 MiB chunks for as long as the hub reads. */
describe('a partner answer larger than the hub reads', () => {
  let server: http.Server;
  let url: string;
  let sent = 0;
  beforeAll(async () => {
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const more = () => {
        while (!res.destroyed && res.write(chunk)) sent += chunk.length;
        if (!res.destroyed) res.once('drain', more);
      };
      res.on('close', () => res.removeAllListeners('drain'));
      more();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('stops reading at 64 MiB and fails the call for good, saying why', async () => {
    const partner = new SignedPartnerHttp(connectionSchema.parse({ adapter: 'reference', url, allowPrivateNetwork: true }), 'key', 30_000);
    const error = await partner.send({ method: 'GET', path: '/staff', operation: 'listStaff' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PartnerError);
    expect((error as PartnerError).retryable).toBe(false);
    expect((error as Error).message).toBe("listStaff: the partner's answer is larger than 64 MiB; the hub reads no more");
    expect(sent).toBeLessThan(80 * 1024 * 1024);
  }, 60_000);
});
