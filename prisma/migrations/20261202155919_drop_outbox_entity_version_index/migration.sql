-- DropIndex
DROP INDEX "outbox_event_entityId_version_key";
