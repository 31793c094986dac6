import { z } from 'zod';
import { USER_TYPES } from '../domain/user-record.ts';

/**
 * The turn-up file: the declarative description of providers, clients,
 * clubs, grants, integration agreements and outbound connections. Applying
 * it twice leaves the hub in the same state. Strings of the form ${NAME}
 * are read from the environment, so secrets need not live in the file.
 */
const code = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be letters, digits, _ . - (starting with a letter or digit)');
const externalId = z.string().min(1).max(100);

const credential = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('token'),
    /** A long random string; stored as its SHA-256. */
    token: z.string().min(32, 'tokens must be at least 32 characters (e.g. `openssl rand -hex 24`)'),
    label: z.string().max(200).optional(),
  }).strict(),
  z.object({
    type: z.literal('basic'),
    username: z.string().min(1).max(200),
    password: z.string().min(12, 'passwords must be at least 12 characters'),
    label: z.string().max(200).optional(),
  }).strict(),
]);

export const providerSchema = z.object({
  code,
  name: z.string().min(1).max(200),
  /** What to do with a leadSource/ownerID the hub does not know yet (seed default: reject). */
  unknownReferences: z.enum(['reject', 'defer']).default('reject'),
  /** Requests per second this provider may make to the API. */
  rateLimitPerSecond: z.number().int().positive().optional(),
  credentials: z.array(credential).default([]),
}).strict();

const receivableUserType = z.enum(USER_TYPES.filter((t) => t !== 'STAFF') as ['PROSPECT', 'MEMBER', 'EX_MEMBER']);

/** What a provider and the hub agreed for one client (seed 003 "Integration Options"). */
export const agreementSchema = z.object({
  /** receive: the hub pushes to this provider; send: it only sends; both. */
  direction: z.enum(['receive', 'send', 'both']).default('send'),
  /** Which user types this provider receives. */
  userTypes: z.array(receivableUserType).default(['PROSPECT', 'MEMBER', 'EX_MEMBER']),
  prospects: z.object({
    staffOwner: z.boolean().default(false),
    leadSource: z.boolean().default(false),
    trial: z.boolean().default(false),
  }).strict().default({ staffOwner: false, leadSource: false, trial: false }),
}).strict();

/** Delivery tuning for one connection; every field has a sane default in the engine. */
export const deliverySchema = z.object({
  concurrency: z.number().int().min(1).max(100).optional(),
  ratePerSecond: z.number().positive().optional(),
  attempts: z.number().int().min(1).max(100).optional(),
  backoffMs: z.number().int().min(10).optional(),
  timeoutMs: z.number().int().min(100).max(600_000).optional(),
}).strict();

/** How the hub calls this provider's system (seed 001 "Connection information"). */
export const connectionSchema = z.object({
  /** The adapter in adapters/ (e.g. intouch, generic). */
  adapter: z.string().min(1).max(100),
  url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }),
  auth: z.discriminatedUnion('type', [
    z.object({ type: z.literal('none') }).strict(),
    z.object({ type: z.literal('basic'), username: z.string().min(1), password: z.string().min(1) }).strict(),
    z.object({ type: z.literal('bearer'), token: z.string().min(1) }).strict(),
    z.object({ type: z.literal('header'), name: z.string().min(1), value: z.string().min(1) }).strict(),
  ]).default({ type: 'none' }),
  /** Key for the HMAC signature on outbound requests. */
  signingSecret: z.string().min(16).optional(),
  /** Partner URLs in loopback/private ranges are refused unless this is set. */
  allowPrivateNetwork: z.boolean().default(false),
  delivery: deliverySchema.default({}),
  /** Adapter-specific options (field mapping, custom IDs); validated by the adapter. */
  options: z.record(z.string(), z.unknown()).default({}),
}).strict();

/** Secret fields of a connection: encrypted at rest, never shown. */
export const CONNECTION_SECRET_PATHS = ['auth.password', 'auth.token', 'auth.value', 'signingSecret'] as const;

export const clientProviderSchema = z.object({
  provider: code,
  /** The provider's own ID for this client. */
  clientId: externalId,
  /** Hub club code -> the provider's own ID for that club. Clubs not listed are not granted. */
  clubs: z.record(code, externalId),
  agreement: agreementSchema.default({ direction: 'send', userTypes: ['PROSPECT', 'MEMBER', 'EX_MEMBER'], prospects: { staffOwner: false, leadSource: false, trial: false } }),
  connection: connectionSchema.optional(),
}).strict();

export const clientSchema = z.object({
  code,
  name: z.string().min(1).max(200),
  clubs: z.array(z.object({ code, name: z.string().min(1).max(200) }).strict()).min(1),
  providers: z.array(clientProviderSchema).default([]),
}).strict();

export const turnupSchema = z.object({
  providers: z.array(providerSchema).default([]),
  clients: z.array(clientSchema).default([]),
}).strict();

export type TurnupFile = z.infer<typeof turnupSchema>;
export type ProviderDeclaration = z.infer<typeof providerSchema>;
export type ClientDeclaration = z.infer<typeof clientSchema>;
export type Agreement = z.infer<typeof agreementSchema>;
export type Connection = z.infer<typeof connectionSchema>;
