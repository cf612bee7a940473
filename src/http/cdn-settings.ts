/**
 * `GET /v1/projects/:writeKey/settings`: the settings document analytics.js (@segment/analytics-next)
 * fetches from its CDN before it sends anything. A site that loads analytics.js with
 * `cdnURL: 'https://<your xref>'` gets this document from xref, and its `Segment.io` integration
 * then posts every call back to this server (`<protocol>://<apiHost>/<t|p|i|…>`).
 */
import { InvalidConfigError, quote } from '../domain/errors.ts';
import { HttpError } from './errors.ts';

/** Where browsers reach this server: the scheme, and host[:port] plus any path prefix (no trailing slash). */
export interface PublicOrigin {
  readonly protocol: 'http' | 'https';
  /** `xref.example.com`, `xref.example.com:8443`, `example.com/xref` */
  readonly host: string;
}

const PUBLIC_URL_TEXT = 'must be the URL browsers reach this server at, such as https://xref.example.com';

/**
 * `XREF_PUBLIC_URL`, checked: an http(s) URL with no user, query or fragment; a path is a prefix
 * the server is mounted under (behind a proxy) and must not end with /v1. undefined when unset.
 */
export function parsePublicUrl(value: string | undefined, name = 'XREF_PUBLIC_URL'): PublicOrigin | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new InvalidConfigError(name, value, PUBLIC_URL_TEXT);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidConfigError(name, value, `${PUBLIC_URL_TEXT} (http:// or https://)`);
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' || value.includes('?') || value.includes('#')) {
    throw new InvalidConfigError(name, value, `${PUBLIC_URL_TEXT}, with no user, query or fragment`);
  }
  const prefix = url.pathname.replace(/\/+$/, '');
  if (/\/v1$/i.test(prefix)) throw new InvalidConfigError(name, value, `${PUBLIC_URL_TEXT}: the server's base URL, without /v1`);
  return { protocol: url.protocol === 'https:' ? 'https' : 'http', host: `${url.host}${prefix}` };
}

const HOST_HEADER = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

function first(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  return value?.split(',')[0]?.trim();
}

/**
 * Where the request says this server is, when `XREF_PUBLIC_URL` is unset: the Host header, and
 * the scheme from `X-Forwarded-Proto` (a TLS-terminating proxy) or else the connection's own.
 */
export function requestOrigin(headers: Record<string, string | string[] | undefined>, connectionProtocol: string): PublicOrigin {
  const host = first(headers.host);
  if (host === undefined || !HOST_HEADER.test(host)) {
    throw new HttpError('XREF_INVALID_REQUEST',
      `the Host header ${host === undefined ? '(none)' : quote(host)} is not a host name: send one, or set XREF_PUBLIC_URL to the URL browsers reach this server at`,
      { field: 'host' },
    );
  }
  const forwarded = first(headers['x-forwarded-proto'])?.toLowerCase();
  const protocol = forwarded === 'https' || forwarded === 'http' ? forwarded : connectionProtocol === 'https' ? 'https' : 'http';
  return { protocol, host: host.toLowerCase() };
}

/**
 * The settings document: only the `Segment.io` integration (one integration means no device-mode
 * destinations to load from Segment's CDN), pointed at this server; remote metrics off
 * (`sampleRate: 0`, else analytics.js posts them to api.segment.io); nothing else to load
 * (no remote plugins, middleware, video plugins or edge function). `plan` is Segment's default
 * (every event enabled), for loaders that read it.
 */
export function settingsDocument(writeKey: string, origin: PublicOrigin) {
  return {
    integrations: {
      'Segment.io': {
        apiKey: writeKey,
        apiHost: `${origin.host}/v1`,
        protocol: origin.protocol,
        // xref drops _metadata (which integrations ran in the browser): not worth the bytes
        addBundledMetadata: false,
        unbundledIntegrations: [],
        maybeBundledConfigIds: {},
      },
    },
    plan: {
      track: { __default: { enabled: true, integrations: {} } },
      identify: { __default: { enabled: true } },
      group: { __default: { enabled: true } },
    },
    metrics: { sampleRate: 0 },
    middlewareSettings: {},
    enabledMiddleware: {},
    remotePlugins: [],
    legacyVideoPluginsEnabled: false,
    analyticsNextEnabled: true,
    edgeFunction: {},
    consentSettings: { allCategories: [], hasUnmappedDestinations: false },
  };
}
