import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADAPTERS, CAPABILITIES, type AdapterContext, type Capability, type PartnerAdapter } from '../../adapters/index.ts';
import { FakeReferencePartner } from '../../adapters/reference/fake.ts';
import { SignedPartnerHttp } from '../../src/delivery/partner-http.ts';
import { connectionSchema } from '../../src/turnup/turnup-schema.ts';

/**
 * The adapter contract, run against every registered adapter and its fake
 * partner over real HTTP: declared capabilities and implemented calls match,
 * and each declared call does what the engine relies on.
 */
const FAKES: Record<string, () => FakeReferencePartner> = {
  reference: () => new FakeReferencePartner(),
};

const METHOD_OF: Record<Capability, keyof PartnerAdapter> = {
  saveProspect: 'saveUser', saveMember: 'saveUser', saveExMember: 'saveUser',
  createProspect: 'createUser', createMember: 'createUser', createExMember: 'createUser',
  updateProspect: 'updateUser', updateMember: 'updateUser', updateExMember: 'updateUser',
  listStaff: 'listStaff', findStaffByEmail: 'findStaffByEmail',
  listLeadSources: 'listLeadSources', findLeadSourceByName: 'findLeadSourceByName',
  createLeadSource: 'createLeadSource', updateLeadSource: 'updateLeadSource', convertProspect: 'convertProspect',
};

it('every registered adapter has a fake partner to test it against', () => {
  expect(Object.keys(FAKES).sort()).toEqual(Object.keys(ADAPTERS).sort());
});

for (const [name, factory] of Object.entries(ADAPTERS)) {
  describe(`the ${name} adapter`, () => {
    const adapter = factory({});
    const fake = FAKES[name]();
    let key = 0;
    const ctx = (): AdapterContext => {
      const connection = connectionSchema.parse({ adapter: name, url: fake.url, allowPrivateNetwork: true });
      return { connection: { url: connection.url, options: {} }, http: new SignedPartnerHttp(connection, `00000000-0000-4000-8000-${String(++key).padStart(12, '0')}`, 5_000) };
    };
    const has = (c: Capability) => adapter.capabilities.includes(c);
    const scope = { clientId: 'client-1', clubId: 'club-1' };
    beforeAll(async () => {
      await fake.start();
    });
    afterAll(() => fake.stop());

    it('declares only known capabilities, and implements exactly the calls it declares', () => {
      for (const c of adapter.capabilities) expect(CAPABILITIES).toContain(c);
      for (const c of CAPABILITIES) {
        const method = METHOD_OF[c];
        const declaredByAny = CAPABILITIES.filter((x) => METHOD_OF[x] === method).some(has);
        expect(typeof adapter[method] === 'function', `${method} exists iff a capability needing it is declared`).toBe(declaredByAny);
      }
    });

    it.runIf(Boolean(adapter.createUser))('creates a user, returns the partner ID, and updates the same record', async () => {
      const user = { uuid: '11111111-1111-4111-8111-111111111111', userType: 'PROSPECT' as const, fields: { firstname: 'Pete', email: 'pete@example.com' }, ...scope };
      const { partnerId } = await adapter.createUser!(ctx(), user);
      expect(partnerId).toBeTruthy();
      await adapter.updateUser!(ctx(), partnerId, { ...user, fields: { firstname: 'Peter', email: 'pete@example.com' } });
      expect(fake.users.get(partnerId)).toMatchObject({ externalRef: user.uuid, firstName: 'Peter' });
    });

    it.runIf(Boolean(adapter.listStaff || adapter.findStaffByEmail))('lists staff with their IDs and emails, and finds one by email', async () => {
      fake.addStaff('9999', 'JStaff@Club.com');
      if (adapter.listStaff) expect(await adapter.listStaff(ctx(), scope)).toContainEqual({ id: '9999', email: 'JStaff@Club.com' });
      if (adapter.findStaffByEmail) expect(await adapter.findStaffByEmail(ctx(), 'jstaff@club.com', scope)).toEqual({ id: '9999', email: 'JStaff@Club.com' });
    });

    it.runIf(Boolean(adapter.createLeadSource))('lists, creates and renames lead sources as declared', async () => {
      const ls = { uuid: '22222222-2222-4222-8222-222222222222', name: 'Newspaper', active: true, ...scope };
      const { partnerId } = await adapter.createLeadSource!(ctx(), ls);
      if (adapter.listLeadSources) expect(await adapter.listLeadSources(ctx(), scope)).toContainEqual({ id: partnerId, name: 'Newspaper', active: true });
      if (adapter.updateLeadSource) {
        await adapter.updateLeadSource(ctx(), partnerId, { ...ls, name: 'Newspapers' });
        expect(fake.leadSources.find((l) => l.id === partnerId)?.name).toBe('Newspapers');
      }
    });

    it('narrows to the capabilities a connection allows', () => {
      const narrowed = factory({ capabilities: ['createProspect', 'updateProspect', 'listStaff'] });
      expect(narrowed.capabilities).toEqual(['createProspect', 'updateProspect', 'listStaff']);
      expect(narrowed.createLeadSource).toBeUndefined();
      expect(narrowed.findStaffByEmail).toBeUndefined();
      expect(() => factory({ capabilities: ['fly'] })).toThrow(/capabilities/);
    });
  });
}
