#!/usr/bin/env -S node --max-semi-space-size=16
// The `connector` command. The sources are TypeScript run through tsx, so
// there is no build step between a checkout and a running hub.
//
// The garbage collector, for a hub whose requests live across a database
// round trip (measured under load, bench/RESULTS.md):
// - The old generation grows to twice what the last full collection left
//   (V8's own rule grows it up to four times while memory is free): more,
//   smaller full collections and, under the same load, ~30 MiB less resident
//   memory on PostgreSQL and ~60-90 MiB less on the embedded database. With
//   the embedded database (no DATABASE_URL), whose PGlite memory shares the
//   process, to one and a half times: another 13-17 MiB less under the
//   ingest benchmark in three interleaved rounds (270-291 against 287-306
//   MiB), with CPU time per save and p99 within the host's noise. Set here
//   because NODE_OPTIONS may not carry it; V8 reads it at each collection.
//   (DATABASE_URL is read here as src/config.ts reads it: set, PostgreSQL.)
// - The young generation must be sized at start: 16 MiB semi-spaces here and
//   in the Dockerfile's NODE_OPTIONS (the API and worker on PostgreSQL), where
//   fewer scavenges, each copying about the same requests in flight, take
//   half the time of 4 MiB ones; 8 MiB in `npm start`, the embedded default,
//   whose PGlite memory shares the process. There fewer objects reach the
//   old generation, so fewer full collections come, each of which held the
//   saves 50-110 ms at a steady 1,000 saves/s (README, the embedded
//   default). Measured in alternating runs of 30 s of full load then a
//   minute at 1,000 saves/s: p99 42-59 ms with 4 MiB (four runs), 24 and
//   29 with 8, 22 and 23 with 16; resident memory 256-280 MiB with 4,
//   278-297 with 8, 320 with 16. (8 MiB for the hub's heap and 4 for
//   PGlite's thread gave 22 and 49 ms, 288 MiB: no memory saved.)
// The heap growth was measured while Express still re-prototyped every
// request, which made most of the garbage long-lived (src/api/app.ts,
// appServer).
//
// `npm start` also gives V8 one background thread instead of four
// (--v8-pool-size=1, fixed at start like the young generation): each thread
// that compiles or collects gets a C heap of its own from glibc, which keeps
// what compiling PGlite's WebAssembly with TurboFan once took. Under load,
// ~130 MB of those heaps were free but held with four threads, ~70 MB with
// one (malloc_trim, called from a debugger, gave it back). On 2 cores under
// the ingest benchmark the embedded hub is ~40-60 MiB smaller: 285-309 MiB
// in 16 rounds, 346-369 in three interleaved without it, at a rate within
// the host's noise. Measured and left: WebAssembly without TurboFan
// (--liftoff-only) saved ~35 MiB more but cost 10-15 % of the saves;
// MALLOC_ARENA_MAX=2 saved ~25 MiB, but an environment variable in an npm
// script does not work on every platform npm runs on.
import v8 from 'node:v8';
import { register } from 'tsx/esm/api';

v8.setFlagsFromString(`--heap-growing-percent=${process.env.DATABASE_URL ? 100 : 50}`);
register();
await import('../src/cli/main.ts');
