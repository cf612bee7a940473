import type { Config } from '../domain/config.ts';
import { InvalidConfigError } from '../domain/errors.ts';
import { type Limits, defaultLimits } from '../domain/limits.ts';
import type { Settings } from '../settings.ts';
import type { AppDeps } from './app.ts';
import { INSECURE_NO_AUTH, type ReadTokensSetting, type WriteKeysSetting, checkAuthConfig } from './auth.ts';
import { parsePublicUrl } from './cdn-settings.ts';

/** What `collectorSettings` gives `buildApp`. */
export type CollectorSettings = Pick<AppDeps, 'writeKeys' | 'readTokens' | 'limits' | 'publishDeadlineMs' | 'segmentUserKind' | 'publicUrl'> & {
  /** The identity config, when given: its payload rules (schemas, unknownTypes, maxFutureMs) apply to every event the collector takes. */
  readonly config?: Config;
  /** Error records kept in full per reason per second (XREF_ERRORS_PER_SECOND). */
  readonly errorsPerSecond: number;
};

/**
 * The settings-derived part of `buildApp`'s deps, checked once at start: the write keys (or the
 * refusal to start without any), the limits, the publish deadline and the Segment user kind,
 * which must be one of the identity config's internal kinds (else no Segment user would link),
 * the public URL the analytics.js settings document points browsers to, the read tokens of the
 * read routes (see `readTokensSetting`), the config whose payload rules the collector applies,
 * and how many error records per reason per second it keeps in full.
 */
export function collectorSettings(settings: Settings, options: { config?: Config; insecureNoAuth?: boolean } = {}): CollectorSettings {
  const writeKeys = checkAuthConfig(settings, options.insecureNoAuth === undefined ? {} : { insecureNoAuth: options.insecureNoAuth });
  if (options.config !== undefined && !options.config.internal.includes(settings.segmentUserKind)) {
    throw new InvalidConfigError(
      'XREF_SEGMENT_USER_KIND',
      settings.segmentUserKind,
      `must be one of the internal kinds of the identity config (${options.config.internal.join(', ')}), or Segment userIds link nothing`,
    );
  }
  const limits: Limits = Object.freeze({ ...defaultLimits(), eventBytes: settings.httpMaxEventBytes, batchBytes: settings.httpMaxRequestBytes });
  const readTokens = readTokensSetting(settings.readTokens, writeKeys);
  const publicUrl = settings.publicUrl;
  parsePublicUrl(publicUrl); // refused at start: InvalidConfigError naming XREF_PUBLIC_URL and the value
  return {
    writeKeys,
    ...(readTokens === undefined ? {} : { readTokens }),
    limits,
    publishDeadlineMs: settings.httpPublishDeadlineMs,
    segmentUserKind: settings.segmentUserKind,
    ...(publicUrl === undefined ? {} : { publicUrl }),
    ...(options.config === undefined ? {} : { config: options.config }),
    errorsPerSecond: settings.errorsPerSecond,
  };
}

/**
 * The read routes' tokens (XREF_READ_TOKENS, checked by `loadSettings`). None: the read routes
 * answer 401, except on a collector that runs without write keys under --insecure-no-auth, where
 * they are open too. With write keys set, the flag leaves them closed: it may be left over from
 * before the keys were set, and what the read routes show is worth more than what the write
 * routes take.
 */
function readTokensSetting(tokens: readonly string[], writeKeys: WriteKeysSetting): ReadTokensSetting | undefined {
  if (tokens.length === 0) return writeKeys === INSECURE_NO_AUTH ? INSECURE_NO_AUTH : undefined;
  return new Set(tokens);
}
