import { benchEnv } from './bench-env.ts';
import { pacedLoad, startIngestHub, type LoadResult } from './ingest.ts';

/**
 * Memory over a long steady ingest: the hub's API under a constant, evenly
 * paced rate of new records, its resident memory sampled all along. RSS
 * rises and falls by up to ~90 MiB between garbage collections, a cycle of
 * a minute or two, so a sample or a minute says little: `start` is the mean
 * of the three minutes after the first (a warm process, not what a cold one
 * allocates once), `end` the mean of the last three (for a short run, 30 %
 * of it each, after its first tenth).
 */
export interface SoakResult {
  load: LoadResult;
  samples: { second: number; rssMiB: number }[];
  startMiB: number;
  endMiB: number;
  maxMiB: number;
  /** (end - start) / start */
  growth: number;
  /** Seconds of samples that start and end each average. */
  windowSeconds: number;
}

export async function soak(options: { seconds: number; rate: number; sampleEverySeconds: number }): Promise<SoakResult> {
  const env = await benchEnv('postgres');
  try {
    const hub = await startIngestHub(env, '0');
    try {
      const started = performance.now();
      const samples: SoakResult['samples'] = [];
      const sample = () => samples.push({ second: Math.round((performance.now() - started) / 1000), rssMiB: hub.rssMiB() });
      const timer = setInterval(sample, options.sampleEverySeconds * 1000);
      const result = await pacedLoad(hub.url, env.token, { seconds: options.seconds, connections: 50, rate: options.rate });
      clearInterval(timer);
      sample();
      const warm = Math.min(60, options.seconds / 10);
      const window = Math.min(180, options.seconds * 0.3);
      const meanOf = (from: number, to: number) => {
        const values = samples.filter((s) => s.second >= from && s.second <= to).map((s) => s.rssMiB);
        return values.length ? values.reduce((a, b) => a + b, 0) / values.length : samples.at(-1)!.rssMiB;
      };
      const startMiB = meanOf(warm, warm + window);
      const endMiB = meanOf(options.seconds - window, options.seconds);
      return { load: result, samples, startMiB, endMiB, maxMiB: Math.max(...samples.map((s) => s.rssMiB)), growth: (endMiB - startMiB) / startMiB, windowSeconds: window };
    } finally {
      await hub.stop();
    }
  } finally {
    await env.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [seconds = '600', rate = '500'] = process.argv.slice(2);
  const result = await soak({ seconds: Number(seconds), rate: Number(rate), sampleEverySeconds: 10 });
  for (const s of result.samples) console.log(`${String(s.second).padStart(5)} s  ${s.rssMiB.toFixed(0)} MiB`);
  console.log(JSON.stringify({ ...result, samples: undefined }));
  process.exit(0);
}
