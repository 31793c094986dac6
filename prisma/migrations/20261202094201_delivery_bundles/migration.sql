-- AlterTable
ALTER TABLE "delivery" ADD COLUMN     "jobId" VARCHAR(100);
