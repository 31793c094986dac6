import { randomFillSync } from 'node:crypto';
import { v7 } from 'uuid';

/**
 * The ID of a new row the hub makes (a record, a link, a delivery, an
 * attempt): a UUID that begins with the time it was made (version 7, RFC
 * 9562). Rows made one after another then sit side by side in their
 * primary key and in every index that leads with the ID (a record's links,
 * events and deliveries by its UUID), so a save writes to the index pages
 * the saves before it wrote to, which stay in the database's cache. With
 * random IDs (version 4) each save writes to a random page of indexes that
 * grow with the tenant, and once they outgrow the cache (the embedded
 * database keeps 16 MB), to a page read back from disk first.
 *
 * Each ID made later sorts after the ones before, within a millisecond
 * too (a counter that starts from random bits each millisecond, as uuid's
 * own v7() keeps). The random bits come from a pool filled 256 IDs at a
 * time, as node:crypto's randomUUID does: uuid's v7() asks the system for
 * 16 bytes per ID, ~5.8 µs each against ~0.3 here, and the hub makes two
 * or three IDs per save and per delivery.
 */
export function newRowId(): string {
  const random = poolBytes();
  const now = Date.now();
  if (now > clock.msecs) {
    clock.msecs = now;
    clock.seq = ((random[6] & 0x7f) << 24) | (random[7] << 16) | (random[8] << 8) | random[9];
  } else {
    clock.seq = (clock.seq + 1) | 0;
    // The 32-bit counter (started below 2^31) ran out within one millisecond: borrow the next.
    if (clock.seq === 0) clock.msecs += 1;
  }
  return v7({ msecs: clock.msecs, seq: clock.seq, random });
}

const clock = { msecs: -Infinity, seq: 0 };

const pool = new Uint8Array(16 * 256);
let taken = pool.length;

/** The next 16 random bytes of the pool, refilled when used up. */
function poolBytes(): Uint8Array {
  if (taken === pool.length) {
    randomFillSync(pool);
    taken = 0;
  }
  return pool.subarray(taken, (taken += 16));
}
