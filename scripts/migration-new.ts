// Writes prisma/migrations/<timestamp>_<name>/migration.sql: the SQL that takes
// the schema as of git HEAD (or nothing, for the first migration) to the
// current prisma/schema.prisma. `prisma migrate dev` cannot run offline, so
// this drives Prisma's own schema engine (WASM) against a throwaway PGlite.
//   npm run migration:new -- <name> [--from-empty]
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { PrismaPg } from '@prisma/adapter-pg';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import { SchemaEngine } from '@prisma/schema-engine-wasm';

const name = process.argv[2];
if (!name || !/^[a-z0-9_]+$/.test(name)) {
  console.error('usage: npm run migration:new -- <snake_case_name> [--from-empty]');
  process.exit(2);
}
const root = path.resolve(import.meta.dirname, '..');
const schemaPath = path.join(root, 'prisma/schema.prisma');
const migrationsDir = path.join(root, 'prisma/migrations');
const current = readFileSync(schemaPath, 'utf8');
const hasMigrations = readdirSync(migrationsDir, { withFileTypes: true }).some((d) => d.isDirectory());
const fromEmpty = process.argv.includes('--from-empty') || !hasMigrations;
const previous = fromEmpty ? null : execFileSync('git', ['show', 'HEAD:prisma/schema.prisma'], { cwd: root, encoding: 'utf8' });

const db = new PGlite();
const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 10 });
await server.start();
const address = server.getServerConn();
const factory = new PrismaPg({ connectionString: `postgresql://postgres@${address}/postgres` });
const adapter = bindMigrationAwareSqlAdapterFactory(Object.assign(factory, { connectToShadowDb: () => factory.connect() }) as never);

let script = '';
const engine = await SchemaEngine.new({ datamodels: [['schema.prisma', current]] }, (line: string) => {
  try {
    const parsed = JSON.parse(line);
    if (parsed?.fields?.message && parsed.level === 'INFO') return;
  } catch { /* not JSON */ }
}, adapter);
const schema = (content: string) => ({ files: [{ path: 'schema.prisma', content }] });
const result = await engine.diff({
  from: previous === null ? { tag: 'empty' } : { tag: 'schemaDatamodel', ...schema(previous) },
  to: { tag: 'schemaDatamodel', ...schema(current) },
  script: true,
  exitCode: null,
  filters: { externalTables: [], externalEnums: [] },
});
script = (result as { stdout?: string }).stdout ?? '';
await server.stop();
await db.close();
if (!script.trim() || script.includes('This is an empty migration')) {
  console.log('schema.prisma has no changes since HEAD: nothing written');
  process.exit(0);
}
const stamp = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
const dir = path.join(migrationsDir, `${stamp}_${name}`);
mkdirSync(dir, { recursive: true });
writeFileSync(path.join(dir, 'migration.sql'), script);
console.log(`wrote ${path.relative(root, dir)}/migration.sql`);
