-- Added by hand (Prisma's schema language has no INCLUDE): both link indexes
-- also hold the column their lookups want, so a lookup reads the index alone
-- (an index-only scan) instead of the index and then the link's table row.
-- Same names and keys as the indexes they replace, which Prisma's schema
-- still describes; a later change to either in schema.prisma must keep the
-- INCLUDE by hand.
--
-- A provider's IDs -> the hub's record (a GET or save by recordID, the
-- insert's conflict check). With 1,000,000 users on a server whose shared
-- buffers hold a fraction of them, a GET read 2.6 pages from the operating
-- system, now 1.75, and the GET statement's PostgreSQL time fell by ~20 %
-- (180 -> 145 us).
DROP INDEX "link_providerId_entityType_clubId_externalId_key";
CREATE UNIQUE INDEX "link_providerId_entityType_clubId_externalId_key" ON "link"("providerId", "entityType", "clubId", "externalId") INCLUDE ("entityId");

-- The hub's record -> a provider's ID for it (a delivery's claim, a GET's
-- recordID, owner and lead source).
DROP INDEX "link_entityId_providerId_entityType_idx";
CREATE INDEX "link_entityId_providerId_entityType_idx" ON "link"("entityId", "providerId", "entityType") INCLUDE ("externalId");
