import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The embedded default keeps its generated secrets (encryption key, admin
 * token) next to its data, readable by the owner only, so a fresh machine
 * needs no configuration and a restart finds the same keys.
 */
export function localSecret(dataDir: string, name: string, generate: () => string): { value: string; file: string; created: boolean } {
  const file = path.join(dataDir, name);
  if (existsSync(file)) return { value: readFileSync(file, 'utf8').trim(), file, created: false };
  mkdirSync(dataDir, { recursive: true });
  const value = generate();
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return { value, file, created: true };
}
