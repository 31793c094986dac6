#!/usr/bin/env node
// The `connector` command. The sources are TypeScript run through tsx, so
// there is no build step between a checkout and a running hub.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
