import { randomUUID } from 'node:crypto';
import type { AdapterContext } from '../adapters/contract.ts';
import type { FakeReferencePartner } from '../adapters/reference/fake.ts';
import { loadConfig } from '../src/config.ts';
import { ConnectionRegistry } from '../src/delivery/connections.ts';
import { partnerAgent, SignedPartnerHttp } from '../src/delivery/partner-http.ts';
import { PartnerSync, type SyncResult } from '../src/delivery/partner-sync.ts';
import { benchEnv, percentile, type BenchEnv } from './bench-env.ts';

/**
 * Staff matching and lead-source sync against a partner's lists, through
 * the hub's own code (PartnerSync, the reference adapter, the engine's HTTP
 * client) and a fake partner over real HTTP: the sync a staff or
 * lead-source change triggers, list fetch and match included.
 */
export interface SyncFigures {
  entries: number;
  staffMs: number;
  leadSourceMs: number;
}

/**
 * Syncs per list: untimed ones first (JIT, first sockets and queries: the
 * first few take several times longer), then timed ones, whose median is
 * reported (each commits a link: fsync times vary on a shared machine).
 */
const WARM_UP = 3;
const SYNCS = 5;

export async function partnerSync(options: { small: number; large: number }) {
  const small = await syncAt(options.small);
  const large = await syncAt(options.large);
  return { small, large, staffRatio: large.staffMs / small.staffMs, leadSourceRatio: large.leadSourceMs / small.leadSourceMs };
}

async function syncAt(entries: number): Promise<SyncFigures> {
  const env = await benchEnv('postgres');
  try {
    seedPartner(env.fake, entries);
    // B's receiving connection as the delivery engine loads it: decrypted, adapter built.
    const [conn] = await new ConnectionRegistry(env.prisma, env.secretBox, loadConfig({}).delivery).forClient(env.clientId);
    if (!conn) throw new Error('the bench client has no receiving connection');
    const agent = partnerAgent(conn);
    try {
      // As ConnectionWorker builds it; the key only matters to writes, a fresh one per sync.
      const context = (): AdapterContext => ({
        connection: { url: conn.connection.url, options: conn.connection.options },
        http: new SignedPartnerHttp(conn.connection, randomUUID(), conn.settings.timeoutMs, agent),
      });
      const sync = new PartnerSync(env.prisma);
      // Each sync matches a hub record not linked yet (the full work: list, match, link) to its own partner entry.
      const picks = Array.from({ length: WARM_UP + SYNCS }, (_, i) => entries - i);
      const staffIds = await hubStaff(env, picks);
      const staffMs = await medianMs(picks, async (pick, i) =>
        expectMatch(await sync.staffId(conn, context(), staffIds[i], { refresh: true }), `S-${pick}`),
      );
      const leadSourceIds = await hubLeadSources(env, picks);
      const leadSourceMs = await medianMs(picks, async (pick, i) =>
        expectMatch(await sync.leadSourceId(conn, context(), leadSourceIds[i], { pushChanges: true }), `LS-${pick}`),
      );
      return { entries, staffMs, leadSourceMs };
    } finally {
      agent.destroy();
    }
  } finally {
    await env.close();
  }
}

/** The partner's lists, spelled differently from the hub (case) so matching normalises as it must. */
function seedPartner(fake: FakeReferencePartner, entries: number): void {
  for (let i = 1; i <= entries; i++) {
    fake.addStaff(`S-${i}`, `Staff.${i}@Club.example`, `Staff ${i}`);
    fake.addLeadSource(`LS-${i}`, `Lead Source ${i}`);
  }
}

async function hubStaff(env: BenchEnv, picks: number[]): Promise<string[]> {
  const ids = picks.map(() => randomUUID());
  const now = new Date();
  await env.prisma.user.createMany({
    data: picks.map((pick, i) => ({
      id: ids[i], clientId: env.clientId, clubId: env.clubId, userType: 'STAFF' as const, userStatus: 'ACTIVE' as const,
      email: `staff.${pick}@club.example`, createdDate: now, modifiedDate: now,
    })),
  });
  return ids;
}

async function hubLeadSources(env: BenchEnv, picks: number[]): Promise<string[]> {
  const ids = picks.map(() => randomUUID());
  const now = new Date();
  await env.prisma.leadSource.createMany({
    data: picks.map((pick, i) => ({ id: ids[i], clientId: env.clientId, clubId: env.clubId, name: `lead source ${pick}`, createdDate: now, modifiedDate: now })),
  });
  return ids;
}

/** A sync that did not match is not a measure of matching. */
function expectMatch(result: SyncResult, partnerId: string): void {
  if (result.how !== 'matched' || result.partnerId !== partnerId) throw new Error(`expected a match with ${partnerId}, got ${JSON.stringify(result)}`);
}

/** Runs `once` for every pick; the median wall time of those after the first WARM_UP. */
async function medianMs(picks: number[], once: (pick: number, i: number) => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (const [i, pick] of picks.entries()) {
    const started = performance.now();
    await once(pick, i);
    if (i >= WARM_UP) times.push(performance.now() - started);
  }
  return percentile(times.sort((a, b) => a - b), 50);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [small = '5000', large = '50000'] = process.argv.slice(2);
  console.log(JSON.stringify(await partnerSync({ small: Number(small), large: Number(large) }), null, 2));
  process.exit(0);
}
