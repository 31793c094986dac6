/**
 * Interactive transaction limits. The embedded PGlite runs one transaction
 * at a time, so under load a save may wait for others before it starts.
 */
export const TRANSACTION_OPTIONS = { maxWait: 10_000, timeout: 15_000 } as const;
