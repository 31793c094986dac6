import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs. Authorization headers and passwords never reach a log line. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'connector' },
      redact: {
        paths: ['req.headers.authorization', 'headers.authorization', '*.password', '*.token', '*.secret'],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
