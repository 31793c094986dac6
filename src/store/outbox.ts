import { parse as parseUuid, v5 as uuidv5 } from 'uuid';
import type { EntityType } from './generated/client.ts';

export interface RecordChange {
  entityType: EntityType;
  entityId: string;
  clientId: string;
  version: number;
  originProviderId: string | null;
}

// Given as bytes, and the name as UTF-8 bytes, so uuid need not convert either on every call.
const EVENT_NAMESPACE = parseUuid('3f1c7a52-6d1e-4f43-9a55-0c2b7f3e8d10');

/**
 * An event's ID is derived from (record, version), so whoever delivers that
 * version, after any crash or retry, sends the same idempotency key.
 */
export function eventIdOf(entityId: string, version: number): string {
  return uuidv5(Buffer.from(`${entityId}/${version}`), EVENT_NAMESPACE);
}
