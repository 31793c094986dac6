import type { Request } from 'express';
import { ValidationError } from '../errors/hub-error.ts';

/**
 * Query parameters as single strings. The seed's own fetch example is
 * `?provider=PROVIDER_ID?client_id=…&club_id=…` (a second `?` where `&`
 * belongs); partners copied it, so a `?` inside a value starts the next
 * parameter instead of becoming part of the value.
 */
export function queryParams(req: Request): Record<string, string> {
  const raw = new URL(req.originalUrl, 'http://hub.invalid').search.slice(1);
  const params = new URLSearchParams(raw.replace(/\?/g, '&'));
  const out: Record<string, string> = Object.create(null);
  const repeated: string[] = [];
  for (const [name, value] of params) {
    if (name in out) repeated.push(name);
    out[name] = value;
  }
  if (repeated.length) throw new ValidationError([...new Set(repeated)].map((n) => `query parameter ${n} is given more than once`));
  return out;
}

export function requireParams(params: Record<string, string>, names: readonly string[]): void {
  const missing = names.filter((n) => !params[n]);
  if (missing.length) throw new ValidationError(missing.map((n) => `query parameter ${n} is required`));
}
