-- DropIndex
DROP INDEX "link_providerId_entityType_externalId_idx";
