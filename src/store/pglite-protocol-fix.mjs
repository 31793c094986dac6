// @ts-check

/**
 * pglite-socket 0.2.17 serves every connection from one PGlite session and
 * queues their protocol messages one by one. It keeps a connection's
 * transaction together, but not an extended-protocol cycle (Parse, Bind,
 * Describe, Execute ... Sync): another connection's messages can run in the
 * middle and replace the unnamed statement or portal, and pg then fails with
 * "unnamed prepared statement does not exist" or "portal does not exist"
 * (seen with BullMQ's PostgreSQL backend next to Prisma). This replaces the
 * queue's scheduler so a cycle, like a transaction, runs to its Sync before
 * another connection's message is taken.
 */
const OPENS_CYCLE = new Set([0x50, 0x42, 0x44, 0x45, 0x43, 0x48]); // P B D E C H

/**
 * @typedef {{ handlerId: number; message: Uint8Array; timestamp: number; resolve(bytes: number): void; reject(error: unknown): void; onData(data: Uint8Array): void }} QueuedMessage
 * @typedef {{
 *   queue: QueuedMessage[];
 *   processing: boolean;
 *   lastHandlerId: number | null;
 *   db: { isInTransaction(): boolean; runExclusive<T>(fn: () => Promise<T>): Promise<T>; execProtocolRawStream(m: Uint8Array, o: { onRawData(d: Uint8Array): void }): Promise<void>; exec(sql: string): Promise<unknown> };
 *   processQueue(): Promise<void>;
 *   clearTransactionIfNeeded(handlerId: number): Promise<void>;
 * }} QueryQueue
 */

/** @param {import('@electric-sql/pglite-socket').PGLiteSocketServer} server */
export function keepProtocolCyclesTogether(server) {
  const queue = /** @type {{ queryQueue: QueryQueue }} */ (/** @type {unknown} */ (server)).queryQueue;
  if (!queue || typeof queue.processQueue !== 'function') throw new Error('pglite-socket internals changed: review src/store/pglite-protocol-fix.mjs');
  let openCycle = false;
  queue.processQueue = async function processQueue() {
    if (queue.processing || queue.queue.length === 0) return;
    queue.processing = true;
    try {
      while (queue.queue.length > 0) {
        /** @type {QueuedMessage | undefined} */
        let item;
        if ((openCycle || queue.db.isInTransaction()) && queue.lastHandlerId !== null) {
          const index = queue.queue.findIndex((q) => q.handlerId === queue.lastHandlerId);
          // The owner of the open cycle has not sent its next message yet: wait for it.
          if (index === -1) break;
          item = queue.queue.splice(index, 1)[0];
        } else {
          item = /** @type {QueuedMessage} */ (queue.queue.shift());
        }
        try {
          await queue.db.runExclusive(() => queue.db.execProtocolRawStream(item.message, { onRawData: (d) => item.onData(d) }));
        } catch (error) {
          item.reject(error);
          continue;
        }
        openCycle = OPENS_CYCLE.has(item.message[0]);
        queue.lastHandlerId = item.handlerId;
        item.resolve(0);
      }
    } finally {
      queue.processing = false;
    }
  };
  const clear = queue.clearTransactionIfNeeded.bind(queue);
  queue.clearTransactionIfNeeded = async function (/** @type {number} */ handlerId) {
    // A connection that went away in the middle of a cycle must not hold the queue.
    if (queue.lastHandlerId === handlerId) openCycle = false;
    await clear(handlerId);
    if (!queue.processing) await queue.processQueue();
  };
}
