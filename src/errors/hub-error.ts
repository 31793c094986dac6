import { ERROR_CATALOGUE, type ErrorCode, type Reason } from './catalogue.ts';

/**
 * The only error type the API answers with. `message` is safe to show the
 * partner (plain English, no stack, no personal data); `detail` is for
 * support and is stored with the errorUUID, never sent.
 */
export class HubError extends Error {
  readonly code: ErrorCode;
  readonly detail: string | undefined;
  /** Seconds, for RATE_LIMITED / UNAVAILABLE. */
  readonly retryAfter: number | undefined;
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { detail?: string; cause?: unknown; retryAfter?: number; headers?: Record<string, string> } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'HubError';
    this.code = code;
    this.detail = options.detail;
    this.retryAfter = options.retryAfter;
    this.headers = options.headers ?? {};
  }

  get reason(): Reason {
    return ERROR_CATALOGUE[this.code].reason;
  }

  get status(): number {
    return ERROR_CATALOGUE[this.code].status;
  }
}

/** A field-level validation failure, gathered so one answer names every problem. */
export class ValidationError extends HubError {
  readonly problems: string[];
  constructor(problems: string[], code: ErrorCode = 'INVALID_RECORD') {
    super(code, problems.length === 1 ? problems[0] : `${problems.length} problems: ${problems.join('; ')}`);
    this.problems = problems;
  }
}
