-- DropIndex
DROP INDEX "link_entityId_idx";

-- CreateIndex
CREATE INDEX "link_entityId_providerId_entityType_idx" ON "link"("entityId", "providerId", "entityType");
