-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "UnknownReferencePolicy" AS ENUM ('REJECT', 'DEFER');

-- CreateEnum
CREATE TYPE "CredentialKind" AS ENUM ('TOKEN', 'BASIC');

-- CreateEnum
CREATE TYPE "UserType" AS ENUM ('PROSPECT', 'MEMBER', 'EX_MEMBER', 'STAFF');

-- CreateEnum
CREATE TYPE "UserStatus" AS ENUM ('ACTIVE', 'INACTIVE');

-- CreateEnum
CREATE TYPE "EntityType" AS ENUM ('USER', 'STAFF', 'LEAD_SOURCE');

-- CreateTable
CREATE TABLE "provider" (
    "id" UUID NOT NULL,
    "code" VARCHAR(100) NOT NULL,
    "name" VARCHAR(200) NOT NULL,
    "unknownReferencePolicy" "UnknownReferencePolicy" NOT NULL DEFAULT 'REJECT',
    "rateLimitPerSecond" INTEGER,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "provider_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "provider_credential" (
    "id" UUID NOT NULL,
    "providerId" UUID NOT NULL,
    "kind" "CredentialKind" NOT NULL,
    "username" VARCHAR(200),
    "secretHash" VARCHAR(300) NOT NULL,
    "label" VARCHAR(200),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "provider_credential_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "client" (
    "id" UUID NOT NULL,
    "code" VARCHAR(100) NOT NULL,
    "name" VARCHAR(200) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "client_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "club" (
    "id" UUID NOT NULL,
    "clientId" UUID NOT NULL,
    "code" VARCHAR(100) NOT NULL,
    "name" VARCHAR(200) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "club_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "provider_client" (
    "id" UUID NOT NULL,
    "providerId" UUID NOT NULL,
    "clientId" UUID NOT NULL,
    "externalId" VARCHAR(100) NOT NULL,
    "agreement" JSONB NOT NULL,
    "connection" JSONB,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "provider_client_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "provider_club" (
    "id" UUID NOT NULL,
    "providerClientId" UUID NOT NULL,
    "clubId" UUID NOT NULL,
    "externalId" VARCHAR(100) NOT NULL,

    CONSTRAINT "provider_club_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "user_record" (
    "id" UUID NOT NULL,
    "clientId" UUID NOT NULL,
    "clubId" UUID NOT NULL,
    "userType" "UserType" NOT NULL,
    "userStatus" "UserStatus" NOT NULL,
    "firstname" VARCHAR(100),
    "lastname" VARCHAR(100),
    "birthdate" DATE,
    "gender" VARCHAR(1),
    "address1" VARCHAR(200),
    "address2" VARCHAR(200),
    "city" VARCHAR(100),
    "zipcode" VARCHAR(20),
    "state" VARCHAR(100),
    "country" VARCHAR(2),
    "mobile" VARCHAR(40),
    "email" VARCHAR(254),
    "homePhone" VARCHAR(40),
    "workPhone" VARCHAR(40),
    "company" VARCHAR(200),
    "trialStartDate" DATE,
    "trialEndDate" DATE,
    "createdBy" VARCHAR(100),
    "createdDate" TIMESTAMPTZ(3) NOT NULL,
    "modifiedBy" VARCHAR(100),
    "modifiedDate" TIMESTAMPTZ(3) NOT NULL,
    "leadSourceId" UUID,
    "ownerId" UUID,
    "pendingProviderId" UUID,
    "pendingLeadSourceRef" VARCHAR(100),
    "pendingOwnerRef" VARCHAR(100),
    "version" INTEGER NOT NULL DEFAULT 1,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "user_record_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "lead_source" (
    "id" UUID NOT NULL,
    "clientId" UUID NOT NULL,
    "clubId" UUID NOT NULL,
    "name" VARCHAR(200) NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "createdBy" VARCHAR(100),
    "createdDate" TIMESTAMPTZ(3) NOT NULL,
    "modifiedBy" VARCHAR(100),
    "modifiedDate" TIMESTAMPTZ(3) NOT NULL,
    "version" INTEGER NOT NULL DEFAULT 1,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "lead_source_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "link" (
    "id" UUID NOT NULL,
    "entityType" "EntityType" NOT NULL,
    "entityId" UUID NOT NULL,
    "providerId" UUID NOT NULL,
    "clubId" UUID NOT NULL,
    "externalId" VARCHAR(100) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "link_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "error_record" (
    "errorUuid" UUID NOT NULL,
    "reason" VARCHAR(30) NOT NULL,
    "httpStatus" INTEGER NOT NULL,
    "message" TEXT NOT NULL,
    "detail" TEXT,
    "providerCode" VARCHAR(100),
    "method" VARCHAR(10) NOT NULL,
    "route" VARCHAR(500) NOT NULL,
    "request" JSONB,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "error_record_pkey" PRIMARY KEY ("errorUuid")
);

-- CreateTable
CREATE TABLE "setting" (
    "key" VARCHAR(100) NOT NULL,
    "value" TEXT NOT NULL,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "setting_pkey" PRIMARY KEY ("key")
);

-- CreateIndex
CREATE UNIQUE INDEX "provider_code_key" ON "provider"("code");

-- CreateIndex
CREATE UNIQUE INDEX "provider_credential_username_key" ON "provider_credential"("username");

-- CreateIndex
CREATE INDEX "provider_credential_providerId_idx" ON "provider_credential"("providerId");

-- CreateIndex
CREATE UNIQUE INDEX "client_code_key" ON "client"("code");

-- CreateIndex
CREATE UNIQUE INDEX "club_clientId_code_key" ON "club"("clientId", "code");

-- CreateIndex
CREATE UNIQUE INDEX "provider_client_providerId_externalId_key" ON "provider_client"("providerId", "externalId");

-- CreateIndex
CREATE UNIQUE INDEX "provider_client_providerId_clientId_key" ON "provider_client"("providerId", "clientId");

-- CreateIndex
CREATE UNIQUE INDEX "provider_club_providerClientId_externalId_key" ON "provider_club"("providerClientId", "externalId");

-- CreateIndex
CREATE UNIQUE INDEX "provider_club_providerClientId_clubId_key" ON "provider_club"("providerClientId", "clubId");

-- CreateIndex
CREATE INDEX "user_record_clubId_idx" ON "user_record"("clubId");

-- CreateIndex
CREATE INDEX "user_record_clientId_pendingProviderId_pendingOwnerRef_idx" ON "user_record"("clientId", "pendingProviderId", "pendingOwnerRef");

-- CreateIndex
CREATE INDEX "user_record_clientId_pendingProviderId_pendingLeadSourceRef_idx" ON "user_record"("clientId", "pendingProviderId", "pendingLeadSourceRef");

-- CreateIndex
CREATE INDEX "lead_source_clubId_idx" ON "lead_source"("clubId");

-- CreateIndex
CREATE INDEX "link_entityId_idx" ON "link"("entityId");

-- CreateIndex
CREATE INDEX "link_providerId_entityType_externalId_idx" ON "link"("providerId", "entityType", "externalId");

-- CreateIndex
CREATE UNIQUE INDEX "link_providerId_entityType_clubId_externalId_key" ON "link"("providerId", "entityType", "clubId", "externalId");

-- CreateIndex
CREATE INDEX "error_record_createdAt_idx" ON "error_record"("createdAt");

-- AddForeignKey
ALTER TABLE "provider_credential" ADD CONSTRAINT "provider_credential_providerId_fkey" FOREIGN KEY ("providerId") REFERENCES "provider"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "club" ADD CONSTRAINT "club_clientId_fkey" FOREIGN KEY ("clientId") REFERENCES "client"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "provider_client" ADD CONSTRAINT "provider_client_providerId_fkey" FOREIGN KEY ("providerId") REFERENCES "provider"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "provider_client" ADD CONSTRAINT "provider_client_clientId_fkey" FOREIGN KEY ("clientId") REFERENCES "client"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "provider_club" ADD CONSTRAINT "provider_club_providerClientId_fkey" FOREIGN KEY ("providerClientId") REFERENCES "provider_client"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "provider_club" ADD CONSTRAINT "provider_club_clubId_fkey" FOREIGN KEY ("clubId") REFERENCES "club"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "user_record" ADD CONSTRAINT "user_record_leadSourceId_fkey" FOREIGN KEY ("leadSourceId") REFERENCES "lead_source"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "user_record" ADD CONSTRAINT "user_record_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "user_record"("id") ON DELETE SET NULL ON UPDATE CASCADE;
