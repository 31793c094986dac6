-- CreateEnum
CREATE TYPE "DeliveryStatus" AS ENUM ('PENDING', 'DELIVERED', 'SKIPPED', 'DEAD');

-- CreateEnum
CREATE TYPE "AttemptOutcome" AS ENUM ('DELIVERED', 'SKIPPED', 'RETRY', 'RATE_LIMITED', 'DEAD');

-- CreateTable
CREATE TABLE "outbox_event" (
    "id" UUID NOT NULL,
    "seq" BIGSERIAL NOT NULL,
    "entityType" "EntityType" NOT NULL,
    "entityId" UUID NOT NULL,
    "clientId" UUID NOT NULL,
    "version" INTEGER NOT NULL,
    "originProviderId" UUID,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "relayedAt" TIMESTAMPTZ(3),

    CONSTRAINT "outbox_event_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "delivery" (
    "id" UUID NOT NULL,
    "entityType" "EntityType" NOT NULL,
    "entityId" UUID NOT NULL,
    "clientId" UUID NOT NULL,
    "providerClientId" UUID NOT NULL,
    "targetProviderId" UUID NOT NULL,
    "wantedVersion" INTEGER NOT NULL,
    "deliveredVersion" INTEGER NOT NULL DEFAULT 0,
    "status" "DeliveryStatus" NOT NULL DEFAULT 'PENDING',
    "lastError" TEXT,
    "replays" INTEGER NOT NULL DEFAULT 0,
    "createAttemptedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "delivery_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "delivery_attempt" (
    "id" UUID NOT NULL,
    "deliveryId" UUID NOT NULL,
    "version" INTEGER NOT NULL,
    "idempotencyKey" UUID NOT NULL,
    "startedAt" TIMESTAMPTZ(3) NOT NULL,
    "durationMs" INTEGER NOT NULL,
    "outcome" "AttemptOutcome" NOT NULL,
    "calls" TEXT,
    "httpStatus" INTEGER,
    "error" TEXT,

    CONSTRAINT "delivery_attempt_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "outbox_event_seq_key" ON "outbox_event"("seq");

-- CreateIndex
CREATE UNIQUE INDEX "outbox_event_entityId_version_key" ON "outbox_event"("entityId", "version");

-- CreateIndex
CREATE INDEX "delivery_status_updatedAt_idx" ON "delivery"("status", "updatedAt");

-- CreateIndex
CREATE INDEX "delivery_providerClientId_status_idx" ON "delivery"("providerClientId", "status");

-- CreateIndex
CREATE UNIQUE INDEX "delivery_entityId_providerClientId_key" ON "delivery"("entityId", "providerClientId");

-- CreateIndex
CREATE INDEX "delivery_attempt_deliveryId_startedAt_idx" ON "delivery_attempt"("deliveryId", "startedAt");

-- AddForeignKey
ALTER TABLE "delivery_attempt" ADD CONSTRAINT "delivery_attempt_deliveryId_fkey" FOREIGN KEY ("deliveryId") REFERENCES "delivery"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Added by hand (Prisma's schema language has no partial indexes): the relay
-- reads only events not yet relayed, oldest first.
CREATE INDEX "outbox_event_unrelayed_idx" ON "outbox_event"("seq") WHERE "relayedAt" IS NULL;
