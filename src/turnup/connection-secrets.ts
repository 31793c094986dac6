import { SecretBox } from '../security/secret-box.ts';
import { CONNECTION_SECRET_PATHS, connectionSchema, type Connection } from './turnup-schema.ts';

/**
 * A connection as stored in provider_client.connection: the same shape, with
 * exactly the fields of CONNECTION_SECRET_PATHS replaced by `enc:v1:`
 * ciphertexts and everything else in clear (so an operator can read the URL
 * and tuning in the database).
 */
export function encryptConnection(secretBox: SecretBox, connection: Connection): Connection {
  return mapSecrets(connection, (value) => secretBox.encrypt(value));
}

/**
 * The stored connection with its secrets decrypted, ready for an adapter;
 * null when the grant has no connection. Throws when a secret field is
 * stored in clear or was encrypted with another key.
 */
export function decryptConnection(secretBox: SecretBox, stored: unknown): Connection | null {
  if (stored === null || stored === undefined) return null;
  const connection = connectionSchema.parse(stored);
  return mapSecrets(connection, (value, secretPath) => {
    if (!SecretBox.isEncrypted(value)) throw new Error(`connection secret ${secretPath} is stored unencrypted`);
    try {
      return secretBox.decrypt(value);
    } catch (cause) {
      throw new Error(`connection secret ${secretPath} cannot be decrypted with this encryption key`, { cause });
    }
  });
}

function mapSecrets(connection: Connection, transform: (value: string, secretPath: string) => string): Connection {
  const copy = structuredClone(connection);
  for (const secretPath of CONNECTION_SECRET_PATHS) {
    const keys = secretPath.split('.');
    const field = keys.pop() as string;
    let parent: unknown = copy;
    for (const key of keys) parent = parent !== null && typeof parent === 'object' ? (parent as Record<string, unknown>)[key] : undefined;
    if (parent === null || typeof parent !== 'object') continue;
    const holder = parent as Record<string, unknown>;
    const value = holder[field];
    if (typeof value === 'string') holder[field] = transform(value, secretPath);
  }
  return copy;
}
