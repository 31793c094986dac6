// @ts-check
// A stand-in for src/store/embedded-postgres-thread.mjs that fails in a given
// way, for tests of how the hub handles its database thread. It serves
// nothing; what it does is named by the folder it is given (workerData.pgdata).
import { parentPort, workerData } from 'node:worker_threads';

const hub = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
/** @type {'dies' | 'throws' | 'wedged' | 'stops'} */
const behaviour = workerData.pgdata;
hub.postMessage({ port: workerData.port });
if (behaviour === 'dies') setTimeout(() => process.exit(3), 20);
if (behaviour === 'throws')
  setTimeout(() => {
    throw new Error('RuntimeError: unreachable (PGlite aborted)');
  }, 20);
// Wedged: asked to stop, it neither closes nor ends; the message port keeps the thread alive.
hub.on('message', (message) => {
  if (message === 'stop' && behaviour !== 'wedged') hub.close();
});
