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

/**
 * The message types a client may send once started (PostgreSQL's frontend
 * protocol 3.0), but for authentication replies ('p'): PGlite trusts every
 * connection and asks for none, and an unasked one also made it answer FATAL
 * without end.
 */
const FRONTEND_TYPES = new Set([...'BCDEFHPQSXcdf'].map((c) => c.charCodeAt(0)));
const PROTOCOL_3 = 196608;

/**
 * Every connection shares PGlite's one session, and PGlite does not end a
 * connection that breaks the protocol the way PostgreSQL ends its backend: a
 * startup packet without a user name ended the session for every later
 * connection, and an unknown message type made it answer FATAL without end,
 * one core busy and no connection served again (seen with pglite-socket
 * 0.2.17). A connection whose first message is not a startup with a user, or
 * which later sends a message no client sends, is closed instead, before
 * PGlite sees the message.
 *
 * @param {import('@electric-sql/pglite-socket').PGLiteSocketServer} server
 */
export function refuseMalformedMessages(server) {
  const queue = /** @type {{ queryQueue: QueryQueue & { enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> } }} */ (
    /** @type {unknown} */ (server)
  ).queryQueue;
  if (!queue || typeof queue.enqueue !== 'function') throw new Error('pglite-socket internals changed: review src/store/pglite-protocol-fix.mjs');
  /** @type {Set<number>} */
  const started = new Set();
  const enqueue = queue.enqueue.bind(queue);
  queue.enqueue = async function (handlerId, message, onData) {
    const ok = started.has(handlerId) ? isFrontendMessage(message) : isStartupWithUser(message);
    if (!ok) throw new Error('malformed PostgreSQL protocol message: connection closed');
    started.add(handlerId);
    return enqueue(handlerId, message, onData);
  };
  const clear = queue.clearTransactionIfNeeded.bind(queue);
  queue.clearTransactionIfNeeded = async function (/** @type {number} */ handlerId) {
    started.delete(handlerId);
    await clear(handlerId);
  };
}

/**
 * A known type whose length field is the message's (a negative one framed
 * an odd-sized piece, which also stopped PGlite serving anyone).
 *
 * @param {Uint8Array} message
 */
function isFrontendMessage(message) {
  if (message.length < 5 || !FRONTEND_TYPES.has(message[0])) return false;
  return Buffer.from(message.buffer, message.byteOffset, message.byteLength).readInt32BE(1) + 1 === message.length;
}

/** @param {Uint8Array} message */
function isStartupWithUser(message) {
  const bytes = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  if (bytes.length < 9 || bytes.readInt32BE(0) !== bytes.length || bytes.readInt32BE(4) !== PROTOCOL_3) return false;
  const fields = bytes.subarray(8).toString('latin1').split('\0');
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'user' && fields[i + 1] !== '') return true;
  return false;
}
