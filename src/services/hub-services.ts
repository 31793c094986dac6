import type { PrismaClient } from '../store/generated/client.ts';
import type { RecordStore } from '../store/record-store.ts';
import { DeliveryAdmin } from './delivery-admin.ts';
import { ErrorLog } from './error-log.ts';
import { LeadSourceService } from './lead-source-service.ts';
import { TenancyService } from './tenancy.ts';
import { UserService } from './user-service.ts';

/** The services the API, the CLI and (later) the workers share. */
export interface HubServices {
  tenancy: TenancyService;
  users: UserService;
  leadSources: LeadSourceService;
  errors: ErrorLog;
  deliveries: DeliveryAdmin;
}

/**
 * `onChange` is called after a save that changed something has committed
 * (the in-process delivery engine uses it to relay at once).
 */
export function createHubServices(deps: {
  prisma: PrismaClient;
  /** The save path's own pool (plain SQL). */
  store: RecordStore;
  cacheTtlMs: number;
  clock?: () => Date;
  onChange?: () => void;
  requeue?: (deliveryIds: string[]) => Promise<void>;
}): HubServices {
  const tenancy = new TenancyService(deps.prisma, deps.cacheTtlMs);
  return {
    tenancy,
    users: new UserService(deps.prisma, deps.store, tenancy, deps.clock, deps.onChange),
    leadSources: new LeadSourceService(deps.prisma, deps.store, tenancy, deps.clock, deps.onChange),
    errors: new ErrorLog(deps.prisma),
    deliveries: new DeliveryAdmin(deps.prisma, deps.requeue),
  };
}
