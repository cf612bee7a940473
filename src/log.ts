import { pino, type Logger } from 'pino';

/**
 * The root logger: pino JSON on stderr (stdout is for the documents commands print). Components
 * take a child: `logger.child({ component: 'engine' })`. Level from XREF_LOG_LEVEL (default info).
 */
export const logger: Logger = pino(
  { level: process.env.XREF_LOG_LEVEL ?? 'info', base: { service: 'xref' } },
  pino.destination({ fd: 2, sync: true }),
);

export function componentLogger(component: string): Logger {
  return logger.child({ component });
}
