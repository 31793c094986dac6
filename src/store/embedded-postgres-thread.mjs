// @ts-check
// The embedded database's own thread (src/store/embedded-postgres.ts starts it).
import { readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { servePGlite } from './pglite-server.mjs';

/** @type {import('node:worker_threads').MessagePort} */
const hub = /** @type {NonNullable<typeof parentPort>} */ (parentPort);
const served = await servePGlite(workerData);
hub.on('message', (message) => {
  if (message === 'stop') void served.stop().then(() => hub.close());
});
hub.postMessage({ port: served.port, tid: ownThreadId() });

/** The thread's ID in the operating system (what `top -H` and `taskset -p` show), when it can tell. */
function ownThreadId() {
  try {
    // Linux: /proc/thread-self links to /proc/<pid>/task/<tid>.
    return Number(readlinkSync('/proc/thread-self').split('/').at(-1));
  } catch {
    return undefined;
  }
}
