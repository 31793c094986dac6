#!/usr/bin/env -S node --max-semi-space-size=4
// The `connector` command. The sources are TypeScript run through tsx, so
// there is no build step between a checkout and a running hub.
//
// --max-semi-space-size=4 (also in package.json's start script and the
// Dockerfile's NODE_OPTIONS): V8 lets the young generation grow to 3 × 16 MiB
// by default; 4 keeps the hub ~80 MiB smaller under a steady ingest load at
// the same throughput (bench/RESULTS.md).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
