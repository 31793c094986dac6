#!/usr/bin/env -S node --max-semi-space-size=16
// The `connector` command. The sources are TypeScript run through tsx, so
// there is no build step between a checkout and a running hub.
//
// The garbage collector, for a hub whose requests live across a database
// round trip (measured under load, bench/RESULTS.md):
// - The old generation grows to twice what the last full collection left
//   (V8's own rule grows it up to four times while memory is free): more,
//   smaller full collections and, under the same load, ~30 MiB less resident
//   memory on PostgreSQL and ~60-90 MiB less on the embedded database. Set
//   here because NODE_OPTIONS may not carry it; V8 reads it at each
//   collection.
// - The young generation must be sized at start: 16 MiB semi-spaces here and
//   in the Dockerfile's NODE_OPTIONS (the API and worker on PostgreSQL), where
//   fewer scavenges, each copying about the same requests in flight, take
//   half the time of 4 MiB ones; 4 MiB in `npm start`, the embedded default,
//   whose PGlite memory shares the process and where 16 MiB costs ~60 MiB
//   more for no measurable gain.
// Both were measured while Express still re-prototyped every request, which
// made most of the garbage long-lived (src/api/app.ts, appServer); a first
// comparison since, 16 against 4 MiB, is within the test host's noise.
import v8 from 'node:v8';
import { register } from 'tsx/esm/api';

v8.setFlagsFromString('--heap-growing-percent=100');
register();
await import('../src/cli/main.ts');
