import type { EntityType, Prisma } from './generated/client.ts';

type Tx = Prisma.TransactionClient;

export interface LinkKey {
  providerId: string;
  entityType: EntityType;
  clubId: string;
  externalId: string;
}

/**
 * A provider's reference (its own lead-source or staff ID) to a hub entity
 * in one client: the same club first, then any club of the client.
 */
export async function findLinkedEntity(
  db: Tx,
  ref: { providerId: string; entityType: EntityType; externalId: string; clubId: string; clientClubIds: string[] },
): Promise<string | undefined> {
  const links = await db.link.findMany({
    where: { providerId: ref.providerId, entityType: ref.entityType, externalId: ref.externalId, clubId: { in: ref.clientClubIds } },
    select: { entityId: true, clubId: true },
    take: 10,
  });
  return (links.find((l) => l.clubId === ref.clubId) ?? links[0])?.entityId;
}
