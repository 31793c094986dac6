import type { PrismaClient } from '../store/generated/client.ts';
import type { SecretBox } from '../security/secret-box.ts';

const KEY = 'encryption.check';
const PLAIN = 'connector-encryption-key-check';

export class EncryptionKeyMismatch extends Error {}

/**
 * Refuses to run with a key that cannot read what is stored: partner
 * credentials encrypted under another key would otherwise fail one
 * delivery at a time, long after start.
 */
export async function verifyEncryptionKey(prisma: PrismaClient, box: SecretBox): Promise<void> {
  const row = await prisma.setting.findUnique({ where: { key: KEY } });
  if (!row) {
    await prisma.setting.upsert({ where: { key: KEY }, create: { key: KEY, value: box.encrypt(PLAIN) }, update: {} });
    return;
  }
  let plain: string | undefined;
  try {
    plain = box.decrypt(row.value);
  } catch {
    plain = undefined;
  }
  if (plain !== PLAIN) {
    throw new EncryptionKeyMismatch(
      'CONNECTOR_ENCRYPTION_KEY cannot decrypt the credentials stored in this database (was the key changed or lost?). Start with the key the data was written with.',
    );
  }
}
