import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { appServer } from '../../src/api/app.ts';

/** An app using Express's own request and response API, so a broken prototype chain shows. */
function sampleApp() {
  const app = express();
  app.post('/echo/:name', express.text({ type: () => true }), (req, res) => {
    res.locals.seen = req.get('x-sample');
    res.status(201).json({ path: req.path, name: req.params.name, header: res.locals.seen, body: req.body });
  });
  return app;
}

/** Sends `count` requests over one keep-alive connection; resolves with the answers. */
async function post(server: http.Server, count: number): Promise<{ status: number; body: unknown }[]> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const answers = [];
  for (let i = 0; i < count; i++) {
    answers.push(
      await new Promise<{ status: number; body: unknown }>((resolve, reject) => {
        const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: `/echo/n${i}`, agent, headers: { 'x-sample': `h${i}` } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end(`body ${i}`);
      }),
    );
  }
  agent.destroy();
  return answers;
}

/** Every Object.setPrototypeOf on a request or response while `run` runs: did it change the prototype? */
async function reprototypings(run: () => Promise<unknown>): Promise<('kept' | 'changed')[]> {
  const original = Object.setPrototypeOf;
  const seen: ('kept' | 'changed')[] = [];
  const spy = vi.spyOn(Object, 'setPrototypeOf').mockImplementation((target: object, proto: object | null) => {
    if (target instanceof http.IncomingMessage || target instanceof http.ServerResponse) {
      seen.push(Object.getPrototypeOf(target) === proto ? 'kept' : 'changed');
    }
    return original(target, proto);
  });
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return seen;
}

describe('the API server builds requests and responses with the app prototypes', () => {
  const servers: http.Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('so Express changes no request or response prototype, and its request and response API works as before', async () => {
    const server = appServer(sampleApp());
    servers.push(server);
    let answers: Awaited<ReturnType<typeof post>> = [];
    const seen = await reprototypings(async () => (answers = await post(server, 3)));
    // Express still makes its call for each request and response; each finds the prototype in place.
    expect(seen).toHaveLength(6);
    expect(seen.every((s) => s === 'kept')).toBe(true);
    expect(answers).toEqual([0, 1, 2].map((i) => ({ status: 201, body: { path: `/echo/n${i}`, name: `n${i}`, header: `h${i}`, body: `body ${i}` } })));
  });

  it('where a plain server leaves Express to change both on every request (what the check above tells apart)', async () => {
    const server = http.createServer(sampleApp());
    servers.push(server);
    const seen = await reprototypings(() => post(server, 3));
    expect(seen).toEqual(Array(6).fill('changed'));
  });
});
