import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, REASONS } from '../../src/errors/catalogue.ts';
import { USER_SCHEMA } from '../../src/domain/user-record.ts';

const readme = readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');

/** Rows of the markdown table that follows `heading`. */
function tableAfter(heading: string): string[][] {
  const start = readme.indexOf(heading);
  expect(start, `README has a "${heading}" section`).toBeGreaterThanOrEqual(0);
  const lines = readme.slice(start).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows;
}

describe('README stays true to the code', () => {
  it('lists every error of the catalogue with its reason and status, and nothing else', () => {
    const rows = tableAfter('### Errors');
    const documented = Object.fromEntries(rows.map(([code, reason, status, when]) => [code, { reason, status: Number(status), summary: when }]));
    expect(documented).toEqual(ERROR_CATALOGUE);
    expect(new Set(rows.map((r) => r[1]))).toEqual(new Set(REASONS));
  });

  it('documents every userInfo field, in answer order', () => {
    const rows = tableAfter('### Fields');
    expect(rows.map((r) => r[0])).toEqual(USER_SCHEMA.fields.map((f) => f.name));
  });

  it('documents every environment variable the configuration reads', () => {
    const config = readFileSync(path.resolve(import.meta.dirname, '../../src/config.ts'), 'utf8');
    const vars = [...config.matchAll(/^\s{2}([A-Z][A-Z_]+):/gm)].map((m) => m[1]);
    const rows = tableAfter('## Configuration').map((r) => r[0].replace(/`/g, ''));
    expect(rows.sort()).toEqual([...new Set(vars)].sort());
  });
});
