-- DropIndex
DROP INDEX "user_record_clientId_pendingProviderId_pendingOwnerRef_idx";

-- DropIndex
DROP INDEX "user_record_clientId_pendingProviderId_pendingLeadSourceRef_idx";

-- Added by hand (Prisma's schema language has no partial indexes): only users
-- waiting for a staff member or lead source are looked up by these, so every
-- other user costs no index entry.
CREATE INDEX "user_record_pendingOwnerRef_idx" ON "user_record"("clientId", "pendingProviderId", "pendingOwnerRef") WHERE "pendingOwnerRef" IS NOT NULL;
CREATE INDEX "user_record_pendingLeadSourceRef_idx" ON "user_record"("clientId", "pendingProviderId", "pendingLeadSourceRef") WHERE "pendingLeadSourceRef" IS NOT NULL;
