import type { AdapterFactory } from './contract.ts';
import { createReferenceAdapter, referenceOptions } from './reference/index.ts';

/**
 * Every adapter the hub knows, by the name a turn-up connection gives in
 * `adapter:`. Registered explicitly; a new partner is a folder plus a line here.
 */
export const ADAPTERS: Record<string, AdapterFactory> = {
  reference: (options) => createReferenceAdapter(referenceOptions(options)),
};

export * from './contract.ts';
