import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { turnupSchema, type TurnupFile } from './turnup-schema.ts';

/**
 * A turn-up file that cannot be loaded or applied. `problems` holds one
 * `path: message` line per problem, so an operator fixes them all in one go
 * instead of one per run.
 */
export class TurnupError extends Error {
  readonly code = 'INVALID_TURNUP';
  readonly problems: string[];

  constructor(heading: string, problems: string[]) {
    super([heading, ...problems.map((problem) => `  ${problem}`)].join('\n'));
    this.name = 'TurnupError';
    this.problems = problems;
  }
}

const EXTENSIONS = ['.yaml', '.yml', '.json'];
const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export async function loadTurnupFile(filePath: string, env: Record<string, string | undefined>): Promise<TurnupFile> {
  return parseTurnup(await readFile(filePath, 'utf8'), path.basename(filePath), env);
}

/** Parses, substitutes ${NAME} from `env`, validates the shape, then the references between entries. */
export function parseTurnup(text: string, fileName: string, env: Record<string, string | undefined>): TurnupFile {
  const fail = (problems: string[]) =>
    new TurnupError(`${fileName} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:`, problems);

  if (!EXTENSIONS.includes(path.extname(fileName).toLowerCase())) {
    throw fail(['(file): a turn-up file must end in .yaml, .yml or .json']);
  }
  // The YAML 1.2 parser reads JSON as well, and reports every syntax error with its line.
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { prettyErrors: false, lineCounter });
  if (document.errors.length > 0) {
    throw fail(
      document.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        return `line ${line}, column ${col}: ${error.message}`;
      }),
    );
  }
  const raw: unknown = document.toJS();

  const missing: string[] = [];
  const substituted = substituteVariables(raw, [], env, missing);
  if (missing.length > 0) throw fail(missing);

  const parsed = turnupSchema.safeParse(substituted);
  if (!parsed.success) throw fail(parsed.error.issues.map((issue) => describeIssue(issue, substituted)));

  const problems = findReferenceProblems(parsed.data);
  if (problems.length > 0) throw fail(problems);
  return parsed.data;
}

/**
 * The reference checks alone, for a TurnupFile built in code rather than
 * parsed (applyTurnup runs them so it never meets a grant of an undeclared
 * provider).
 */
export function assertTurnupReferences(file: TurnupFile, heading = 'The turn-up file is inconsistent:'): void {
  const problems = findReferenceProblems(file);
  if (problems.length > 0) throw new TurnupError(heading, problems);
}

type PathSegment = string | number | symbol;

/** `clients[0].providers[1].clubs.downtown`; keys that are not plain words are quoted. */
export function formatPath(segments: readonly PathSegment[]): string {
  if (segments.length === 0) return '(file)';
  return segments
    .map((segment, index) => {
      if (typeof segment === 'number') return `[${segment}]`;
      const key = String(segment);
      if (/^[A-Za-z0-9_-]+$/.test(key)) return index === 0 ? key : `.${key}`;
      return `[${JSON.stringify(key)}]`;
    })
    .join('');
}

function substituteVariables(value: unknown, at: PathSegment[], env: Record<string, string | undefined>, missing: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(VARIABLE, (match, name: string) => {
      const found = env[name];
      if (found === undefined) {
        missing.push(`${formatPath(at)}: environment variable ${name} is not set`);
        return match;
      }
      return found;
    });
  }
  if (Array.isArray(value)) return value.map((item, index) => substituteVariables(item, [...at, index], env, missing));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, substituteVariables(item, [...at, key], env, missing)]),
    );
  }
  return value;
}

/** Zod's messages, reworded where the default reads like a type checker rather than an operator's manual. */
function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
  const at = formatPath(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const fields = issue.keys.map((key) => JSON.stringify(key)).join(', ');
      return `${at}: unknown field${issue.keys.length === 1 ? '' : 's'} ${fields}`;
    }
    case 'invalid_union':
      if ('options' in issue && issue.options) return `${at}: must be one of ${quotedList(issue.options)}`;
      return `${at}: ${issue.message}`;
    case 'invalid_value':
      return `${at}: must be ${issue.values.length === 1 ? quotedList(issue.values) : `one of ${quotedList(issue.values)}`}`;
    case 'invalid_key':
      return `${at}: the key is invalid: ${issue.issues.map((inner) => inner.message).join('; ')}`;
    case 'invalid_type': {
      const actual = valueAt(input, issue.path);
      if (actual === undefined) return `${at}: is required`;
      if (issue.expected === 'string' && (typeof actual === 'number' || typeof actual === 'boolean')) {
        return `${at}: must be text; put the value in quotes so YAML does not read it as a ${typeof actual}`;
      }
      return `${at}: must be ${article(issue.expected)}, not ${actual === null ? 'empty' : article(Array.isArray(actual) ? 'array' : typeof actual)}`;
    }
    case 'too_small':
      if (issue.origin === 'string' && Number(issue.minimum) === 1) return `${at}: must not be empty`;
      if (issue.origin === 'array') return `${at}: must list at least ${issue.minimum} entr${Number(issue.minimum) === 1 ? 'y' : 'ies'}`;
      return `${at}: ${issue.message}`;
    default:
      return `${at}: ${issue.message}`;
  }
}

function quotedList(values: readonly unknown[]): string {
  return values.map((value) => JSON.stringify(value)).join(', ');
}

function article(kind: string): string {
  const named = kind === 'object' ? 'mapping' : kind === 'array' ? 'list' : kind;
  return /^[aeiou]/.test(named) ? `an ${named}` : `a ${named}`;
}

function valueAt(input: unknown, segments: readonly PathSegment[]): unknown {
  let current = input;
  for (const segment of segments) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

/** Rules between entries that a per-entry schema cannot see. */
function findReferenceProblems(file: TurnupFile): string[] {
  const problems: string[] = [];
  const report = (segments: PathSegment[], message: string) => problems.push(`${formatPath(segments)}: ${message}`);

  const providerAt = firstOccurrences(file.providers.map((provider) => provider.code), (index, first) =>
    report(['providers', index, 'code'], `provider "${file.providers[index].code}" is already declared at ${formatPath(['providers', first])}`),
  );

  const usernameAt = new Map<string, string>();
  const tokenAt = new Map<string, string>();
  file.providers.forEach((provider, i) =>
    provider.credentials.forEach((credential, j) => {
      const at: PathSegment[] = ['providers', i, 'credentials', j];
      const [seen, key, field] = credential.type === 'basic' ? [usernameAt, credential.username, 'username'] : [tokenAt, credential.token, 'token'];
      const first = seen.get(key);
      if (first === undefined) seen.set(key, formatPath(at));
      else if (credential.type === 'basic') report([...at, field], `username "${key}" is already used at ${first} (usernames are unique across all providers)`);
      else report([...at, field], `the same token is already used at ${first} (every token must be different)`);
    }),
  );

  firstOccurrences(file.clients.map((client) => client.code), (index, first) =>
    report(['clients', index, 'code'], `client "${file.clients[index].code}" is already declared at ${formatPath(['clients', first])}`),
  );

  // provider code -> the provider's client ID -> where it is used first
  const clientIdAt = new Map<string, Map<string, { client: string; at: string }>>();
  file.clients.forEach((client, i) => {
    firstOccurrences(client.clubs.map((club) => club.code), (index, first) =>
      report(['clients', i, 'clubs', index, 'code'], `club "${client.clubs[index].code}" is already declared at ${formatPath(['clients', i, 'clubs', first])}`),
    );
    const clubCodes = [...new Set(client.clubs.map((club) => club.code))];
    const grantAt = new Map<string, number>();

    client.providers.forEach((grant, j) => {
      const at: PathSegment[] = ['clients', i, 'providers', j];
      if (!providerAt.has(grant.provider)) {
        report([...at, 'provider'], `provider "${grant.provider}" is not declared under providers (the file must declare every provider it uses)`);
      }
      const firstGrant = grantAt.get(grant.provider);
      if (firstGrant !== undefined) {
        report([...at, 'provider'], `provider "${grant.provider}" is already listed for client "${client.code}" at ${formatPath(['clients', i, 'providers', firstGrant])}`);
      } else {
        grantAt.set(grant.provider, j);
        const used = clientIdAt.get(grant.provider) ?? new Map<string, { client: string; at: string }>();
        clientIdAt.set(grant.provider, used);
        const other = used.get(grant.clientId);
        if (other) {
          report([...at, 'clientId'], `provider "${grant.provider}" already uses client ID "${grant.clientId}" for client "${other.client}" (${other.at})`);
        } else {
          used.set(grant.clientId, { client: client.code, at: formatPath([...at, 'clientId']) });
        }
      }

      const clubByExternalId = new Map<string, string>();
      for (const [clubCode, externalId] of Object.entries(grant.clubs)) {
        if (!clubCodes.includes(clubCode)) {
          report([...at, 'clubs', clubCode], `"${clubCode}" is not a club of client "${client.code}" (its clubs: ${clubCodes.join(', ')})`);
        }
        const otherClub = clubByExternalId.get(externalId);
        if (otherClub !== undefined) {
          report([...at, 'clubs', clubCode], `provider "${grant.provider}" already uses club ID "${externalId}" for club "${otherClub}" of this client; each club needs its own ID`);
        } else {
          clubByExternalId.set(externalId, clubCode);
        }
      }

      if (grant.connection && grant.agreement.direction === 'send') {
        report(
          [...at, 'connection'],
          `provider "${grant.provider}" only sends for this client (agreement.direction: send), so the hub never calls it; set agreement.direction to receive or both, or remove the connection`,
        );
      }
    });
  });
  return problems;
}

/** Map of value -> first index; calls `onRepeat(index, firstIndex)` for every later repeat. */
function firstOccurrences(values: string[], onRepeat: (index: number, first: number) => void): Map<string, number> {
  const first = new Map<string, number>();
  values.forEach((value, index) => {
    const seen = first.get(value);
    if (seen === undefined) first.set(value, index);
    else onRepeat(index, seen);
  });
  return first;
}
