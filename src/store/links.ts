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

/**
 * SQL for the ID a provider knows a hub entity by (`providerId`,
 * `entityType` and `entityId` are SQL expressions), or NULL. The entity's
 * links are found by entityId alone, then filtered: an entity has a link
 * per provider (and club) that knows it, a few rows however large the
 * tenant. `OFFSET 0` keeps the planner from merging the two steps: with all
 * three conditions in one query and statistics taken before a provider's
 * staff or lead sources arrived, it walks the unique (providerId,
 * entityType, ...) index through every link of that provider and type, and
 * each lookup costs more with every one of them.
 */
export function partnerIdSql(providerId: string, entityType: string, entityId: string): string {
  return `(SELECT y."externalId" FROM (SELECT x."externalId", x."providerId", x."entityType" FROM link x WHERE x."entityId" = ${entityId} OFFSET 0) y
    WHERE y."providerId" = ${providerId} AND y."entityType" = ${entityType} LIMIT 1)`;
}

/** The query behind findPartnerId: $1 provider, $2 entity type, $3 entity. */
export const PARTNER_ID_QUERY = `SELECT ${partnerIdSql('$1::uuid', '$2::"EntityType"', '$3::uuid')} AS "externalId"`;

/** The ID a provider knows a hub entity by (partnerIdSql), if it has one. */
export async function findPartnerId(db: Tx, providerId: string, entityType: EntityType, entityId: string): Promise<string | undefined> {
  const [row] = await db.$queryRawUnsafe<{ externalId: string | null }[]>(PARTNER_ID_QUERY, providerId, entityType, entityId);
  return row?.externalId ?? undefined;
}
