import { USER_SCHEMA } from '../domain/user-record.ts';

/**
 * Stored error copies keep what support needs (structure, IDs, which field
 * was wrong) and mask personal data: names, birthdate, address, phones,
 * email. Authorization and cookies never leave the request.
 */
const PERSONAL = new Set(USER_SCHEMA.fields.filter((f) => f.personal).map((f) => f.name.toLowerCase()));
const KEPT_HEADERS = ['content-type', 'content-length', 'accept', 'user-agent', 'x-request-id'];
const MAX_BODY = 16 * 1024;

export const REDACTED = '[redacted]';

export function isPersonalField(name: string): boolean {
  return PERSONAL.has(name.toLowerCase());
}

export function redactHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const value = headers[name];
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  if (headers.authorization) out.authorization = `${String(headers.authorization).split(' ')[0]} ${REDACTED}`;
  return out;
}

/**
 * Works on the raw text, so malformed bodies (the ones support most needs
 * to see) are redacted too. XML: the text of personal elements; JSON: the
 * string values of personal keys.
 */
export function redactBody(text: string): string {
  const clipped = text.length > MAX_BODY ? `${text.slice(0, MAX_BODY)}…[${text.length - MAX_BODY} more characters]` : text;
  return clipped
    .replace(/<([A-Za-z_][\w.-]*)(\s[^>]*)?>([^<]*)<\/\s*\1\s*>/g, (whole, name: string, attrs: string | undefined, inner: string) =>
      isPersonalField(name) && inner.trim() !== '' ? `<${name}${attrs ?? ''}>${REDACTED}</${name}>` : whole,
    )
    .replace(/"([A-Za-z_][\w.-]*)"(\s*:\s*)"((?:[^"\\]|\\.)*)"/g, (whole, name: string, colon: string) =>
      isPersonalField(name) ? `"${name}"${colon}"${REDACTED}"` : whole,
    );
}
