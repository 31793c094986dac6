import type { PrismaClient, Prisma } from '../store/generated/client.ts';
import type { HubError } from '../errors/hub-error.ts';
import { redactBody, redactHeaders } from './redaction.ts';

export interface FailedRequest {
  method: string;
  route: string;
  query: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
  body: string | undefined;
}

export interface StoredError {
  errorUUID: string;
  reason: string;
  httpStatus: number;
  code: string;
  message: string;
  detail: string | null;
  provider: string | null;
  method: string;
  route: string;
  time: string;
  request: unknown;
}

/** Every error the API answers, kept by errorUUID so support can look it up. */
export class ErrorLog {
  constructor(private readonly prisma: PrismaClient) {}

  async record(errorUuid: string, error: HubError, provider: string | undefined, request: FailedRequest): Promise<void> {
    const copy = {
      code: error.code,
      headers: redactHeaders(request.headers),
      query: request.query,
      body: request.body === undefined || request.body === '' ? null : redactBody(request.body),
    };
    await this.prisma.errorRecord.create({
      data: {
        errorUuid,
        reason: error.reason,
        httpStatus: error.status,
        message: error.message,
        detail: error.detail ?? null,
        providerCode: provider ?? null,
        method: request.method,
        route: request.route.slice(0, 500),
        request: copy as Prisma.InputJsonValue,
      },
    });
  }

  async find(errorUuid: string): Promise<StoredError | null> {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(errorUuid)) return null;
    const row = await this.prisma.errorRecord.findUnique({ where: { errorUuid } });
    return row ? toStored(row) : null;
  }

  async recent(filter: { provider?: string; reason?: string; limit?: number }): Promise<StoredError[]> {
    const rows = await this.prisma.errorRecord.findMany({
      where: { providerCode: filter.provider, reason: filter.reason },
      orderBy: { createdAt: 'desc' },
      take: Math.min(filter.limit ?? 50, 500),
    });
    return rows.map(toStored);
  }
}

function toStored(row: Prisma.ErrorRecordGetPayload<object>): StoredError {
  const request = row.request as { code?: string } | null;
  return {
    errorUUID: row.errorUuid,
    reason: row.reason,
    httpStatus: row.httpStatus,
    code: request?.code ?? row.reason,
    message: row.message,
    detail: row.detail,
    provider: row.providerCode,
    method: row.method,
    route: row.route,
    time: row.createdAt.toISOString(),
    request: row.request,
  };
}
