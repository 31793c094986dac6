import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verifySignature } from '../signature.ts';

/**
 * A fake of the reference partner API: a real HTTP server (port 0 by
 * default) that keeps users, staff and lead sources, enforces the partner's
 * rules, deduplicates on the idempotency key, records every request, and can
 * be told to fail, slow down, rate-limit or go away. Used by tests and
 * runnable by hand: `npx tsx adapters/reference/fake.ts --port 9001`.
 */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  status: number;
  at: number;
  /** Answered from the idempotency store, not applied again. */
  duplicate: boolean;
}

export interface FakeUser {
  id: string;
  externalRef: string;
  [field: string]: unknown;
}

/** How the fake answers: normally, with an error, slowly, rate-limited, or not at all. */
export type FakeBehaviour =
  | { kind: 'ok' }
  | { kind: 'error'; status: number }
  | { kind: 'slow'; ms: number }
  | { kind: 'rateLimit'; retryAfterSeconds: number }
  | { kind: 'hang' };

export interface FakeOptions {
  port?: number;
  /** When set, requests must carry a valid X-Connector-Signature. */
  signingSecret?: string;
  /** When set, requests must carry exactly this Authorization header. */
  authorization?: string;
  /** Keep every request and applied write (default); benchmarks turn it off and read the counters. */
  keepHistory?: boolean;
  /** Called for every request as it arrives (benchmarks measure latency with it). */
  onRequest?: (method: string, path: string, body: string) => void;
}

export class FakeReferencePartner {
  readonly users = new Map<string, FakeUser>();
  readonly staff: { id: string; email: string; name?: string }[] = [];
  readonly leadSources: { id: string; name: string; active: boolean }[] = [];
  readonly requests: RecordedRequest[] = [];
  /** Every write actually applied, in order: what "applied exactly once" is checked against. */
  readonly applied: { key: string | undefined; op: string; id: string; body: Record<string, unknown> }[] = [];
  behaviour: FakeBehaviour = { kind: 'ok' };
  /** Requests received and writes applied, also when history is off. */
  readonly counts = { requests: 0, applied: 0 };
  private readonly idempotent = new Map<string, { status: number; body: string }>();
  private failures: { count: number; status: number }[] = [];
  private server: http.Server | undefined;
  private readonly sockets = new Set<import('node:net').Socket>();
  private port: number;

  constructor(private readonly options: FakeOptions = {}) {
    this.port = options.port ?? 0;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    // Like a partner behind a load balancer: idle keep-alive connections live a minute.
    this.server.keepAliveTimeout = 60_000;
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Goes away: the port refuses connections until `start()` again. */
  async stop(): Promise<void> {
    if (!this.server) return;
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The next `count` requests answer `status`. */
  failNext(count: number, status = 500): void {
    this.failures.push({ count, status });
  }

  addStaff(id: string, email: string, name?: string): void {
    this.staff.push({ id, email, name });
  }

  addLeadSource(id: string, name: string): void {
    this.leadSources.push({ id, name, active: true });
  }

  userByRef(externalRef: string): FakeUser | undefined {
    return [...this.users.values()].find((u) => u.externalRef === externalRef);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const record: RecordedRequest = { method: req.method!, path: req.url!, headers: req.headers, body, status: 0, at: Date.now(), duplicate: false };
    this.counts.requests += 1;
    this.options.onRequest?.(req.method!, req.url!, body);
    if (this.options.keepHistory !== false) this.requests.push(record);
    const answer = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(payload === undefined ? '' : JSON.stringify(payload));
    };

    const behaviour = this.behaviour;
    if (behaviour.kind === 'hang') return; // never answers: the caller's timeout must fire
    if (behaviour.kind === 'slow') await new Promise((r) => setTimeout(r, behaviour.ms));
    if (behaviour.kind === 'rateLimit') return answer(429, { error: 'slow down' }, { 'retry-after': String(behaviour.retryAfterSeconds) });
    if (behaviour.kind === 'error') return answer(behaviour.status, { error: 'partner failure' });
    const failure = this.failures[0];
    if (failure) {
      if (--failure.count <= 0) this.failures.shift();
      return answer(failure.status, { error: 'injected failure' });
    }
    if (this.options.authorization && req.headers.authorization !== this.options.authorization) return answer(401, { error: 'bad credentials' });
    if (this.options.signingSecret && !verifySignature(this.options.signingSecret, body, req.headers[SIGNATURE_HEADER] as string | undefined)) {
      return answer(401, { error: 'bad signature' });
    }
    const key = req.headers[IDEMPOTENCY_HEADER] as string | undefined;
    const replayKey = key && req.method !== 'GET' ? `${req.method} ${req.url} ${key}` : undefined;
    const replay = replayKey ? this.idempotent.get(replayKey) : undefined;
    if (replay) {
      record.duplicate = true;
      record.status = replay.status;
      res.writeHead(replay.status, { 'content-type': 'application/json', 'idempotent-replayed': 'true' });
      res.end(replay.body);
      return;
    }
    let parsed: Record<string, unknown> = {};
    if (body) {
      try {
        parsed = JSON.parse(body);
      } catch {
        return answer(400, { error: 'body is not JSON' });
      }
    }
    const [status, payload] = this.route(req.method!, new URL(req.url!, 'http://fake'), parsed, key);
    if (replayKey && status < 500) this.idempotent.set(replayKey, { status, body: JSON.stringify(payload) });
    answer(status, payload);
  }

  private route(method: string, url: URL, body: Record<string, unknown>, key: string | undefined): [number, unknown] {
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] === 'users') {
      if (method === 'POST' && parts.length === 1) return this.saveUser(undefined, body, key);
      if (method === 'PUT' && parts.length === 2) return this.saveUser(decodeURIComponent(parts[1]), body, key);
    }
    if (parts[0] === 'staff' && method === 'GET') {
      const email = url.searchParams.get('email');
      const staff = email ? this.staff.filter((s) => s.email.trim().toLowerCase() === email.trim().toLowerCase()) : this.staff;
      return [200, { staff }];
    }
    if (parts[0] === 'lead-sources') {
      if (method === 'GET') return [200, { leadSources: this.leadSources }];
      if (method === 'POST' && parts.length === 1) {
        if (typeof body.name !== 'string' || !body.name) return [422, { error: 'name is required' }];
        if (this.leadSources.some((l) => l.name.toLowerCase() === (body.name as string).toLowerCase())) return [409, { error: 'lead source exists' }];
        const created = { id: `LS-${this.leadSources.length + 1}`, name: body.name, active: body.active !== false };
        this.leadSources.push(created);
        this.applied.push({ key, op: 'createLeadSource', id: created.id, body });
        return [201, { id: created.id }];
      }
      if (method === 'PUT' && parts.length === 2) {
        const found = this.leadSources.find((l) => l.id === decodeURIComponent(parts[1]));
        if (!found) return [404, { error: 'no such lead source' }];
        if (typeof body.name === 'string') found.name = body.name;
        if (typeof body.active === 'boolean') found.active = body.active;
        this.applied.push({ key, op: 'updateLeadSource', id: found.id, body });
        return [200, { id: found.id }];
      }
    }
    return [404, { error: `no route ${method} ${url.pathname}` }];
  }

  /** The partner's rules for a user write. */
  private saveUser(id: string | undefined, body: Record<string, unknown>, key: string | undefined): [number, unknown] {
    if (!['PROSPECT', 'MEMBER', 'EX_MEMBER'].includes(body.type as string)) return [422, { error: 'type must be PROSPECT, MEMBER or EX_MEMBER' }];
    if (typeof body.externalRef !== 'string') return [422, { error: 'externalRef is required' }];
    if (body.ownerId != null && !this.staff.some((s) => s.id === body.ownerId)) return [422, { error: `unknown staff ${body.ownerId}` }];
    if (body.leadSourceId != null && !this.leadSources.some((l) => l.id === body.leadSourceId)) {
      return [422, { error: `unknown lead source ${body.leadSourceId}` }];
    }
    if (id !== undefined && !this.users.has(id)) return [404, { error: `no user ${id}` }];
    // Like the hub, the partner keeps the newer of two versions: an update older than what it holds is acknowledged, not applied.
    const existing = id === undefined ? undefined : this.users.get(id);
    if (existing && typeof existing.modifiedAt === 'string' && typeof body.modifiedAt === 'string' && Date.parse(body.modifiedAt) < Date.parse(existing.modifiedAt)) {
      return [200, { id, ignored: 'older than the stored version' }];
    }
    const userId = id ?? `U-${randomUUID().slice(0, 8)}`;
    this.users.set(userId, { ...body, id: userId, externalRef: body.externalRef as string });
    this.counts.applied += 1;
    if (this.options.keepHistory !== false) this.applied.push({ key, op: id ? 'updateUser' : 'createUser', id: userId, body });
    return [id ? 200 : 201, { id: userId }];
  }
}

// Runnable by hand for demos: prints its URL and every request.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const portArg = process.argv.indexOf('--port');
  const fake = await new FakeReferencePartner({ port: portArg > 0 ? Number(process.argv[portArg + 1]) : 9001 }).start();
  fake.addStaff('9999', 'JStaff@Club.com', 'John Staff');
  console.log(`fake reference partner on ${fake.url} (staff 9999 JStaff@Club.com)`);
  const log = setInterval(() => {
    while (fake.requests.length) {
      const r = fake.requests.shift()!;
      console.log(`${new Date(r.at).toISOString()} ${r.method} ${r.path} -> ${r.status}${r.duplicate ? ' (duplicate)' : ''} ${r.body}`);
    }
  }, 200);
  process.on('SIGINT', () => {
    clearInterval(log);
    void fake.stop().then(() => process.exit(0));
  });
}
