import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FakeReferencePartner } from '../adapters/reference/fake.ts';

/**
 * The fake partner in a process of its own, as a real partner would be: its
 * HTTP parsing and JSON work do not share the hub's event loop and CPU time.
 * The parent reads its counters over IPC.
 */
export interface FakePartnerProcess {
  url: string;
  pid: number;
  counts(): Promise<{ requests: number; applied: number }>;
  stop(): Promise<void>;
}

type Message = { url: string } | { counts: { requests: number; applied: number } };

export async function startFakePartnerProcess(): Promise<FakePartnerProcess> {
  const child = fork(fileURLToPath(import.meta.url), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the fake partner process exited (${code}) before listening`)));
    child.once('message', (message: Message) => resolve((message as { url: string }).url));
  });
  return {
    url,
    pid: child.pid!,
    counts: () => askCounts(child),
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill();
      await exited;
    },
  };
}

function askCounts(child: ChildProcess): Promise<{ requests: number; applied: number }> {
  return new Promise((resolve) => {
    child.once('message', (message: Message) => resolve((message as { counts: { requests: number; applied: number } }).counts));
    child.send('counts');
  });
}

// The child: serve, and answer each 'counts' message with the counters.
if (process.send && process.argv[1] === fileURLToPath(import.meta.url)) {
  const fake = await new FakeReferencePartner({ keepHistory: false }).start();
  process.on('message', () => process.send!({ counts: fake.counts } satisfies Message));
  process.on('disconnect', () => process.exit(0));
  process.send({ url: fake.url } satisfies Message);
}
