import type { Config, ServiceSettings } from '../domain/config.ts';
import { InvalidConfigError } from '../domain/errors.ts';
import { type Limits, defaultLimits } from '../domain/limits.ts';
import type { AppDeps } from './app.ts';
import { checkAuthConfig } from './auth.ts';
import { parsePublicUrl } from './cdn-settings.ts';

/**
 * The settings-derived part of `buildApp`'s deps, checked once at start: the write keys (or the
 * refusal to start without any), the limits, the publish deadline and the Segment user kind,
 * which must be one of the identity config's internal kinds (else no Segment user would link),
 * and `XREF_PUBLIC_URL` (read from `options.env`, default `process.env`): the URL browsers reach
 * this server at, which the analytics.js settings document points them to.
 */
export function collectorSettings(
  settings: ServiceSettings,
  options: { config?: Config; insecureNoAuth?: boolean; env?: NodeJS.ProcessEnv } = {},
): Pick<AppDeps, 'writeKeys' | 'limits' | 'publishDeadlineMs' | 'segmentUserKind' | 'publicUrl'> {
  const writeKeys = checkAuthConfig(settings, options.insecureNoAuth === undefined ? {} : { insecureNoAuth: options.insecureNoAuth });
  if (options.config !== undefined && !options.config.internal.includes(settings.segmentUserKind)) {
    throw new InvalidConfigError(
      'XREF_SEGMENT_USER_KIND',
      settings.segmentUserKind,
      `must be one of the internal kinds of the identity config (${options.config.internal.join(', ')}), or Segment userIds link nothing`,
    );
  }
  const limits: Limits = Object.freeze({ ...defaultLimits(), eventBytes: settings.httpMaxEventBytes, batchBytes: settings.httpMaxRequestBytes });
  const publicUrl = (options.env ?? process.env).XREF_PUBLIC_URL?.trim() || undefined;
  parsePublicUrl(publicUrl); // refused at start: InvalidConfigError naming XREF_PUBLIC_URL and the value
  return {
    writeKeys,
    limits,
    publishDeadlineMs: settings.httpPublishDeadlineMs,
    segmentUserKind: settings.segmentUserKind,
    ...(publicUrl === undefined ? {} : { publicUrl }),
  };
}
