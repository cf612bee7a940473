/**
 * analytics.js, unchanged, in a real browser: a page (served here by a tiny http server on
 * 127.0.0.1, another origin than xref) loads @segment/analytics-next from node_modules, bundled by
 * esbuild, with the one change a site makes: `AnalyticsBrowser.load({ writeKey, cdnURL: <xref> })`.
 * analytics.js fetches its settings from xref, then sends an anonymous page() and track('Clicked'),
 * then identify('u1'), cross-origin, to wherever those settings say. The real collector stores them
 * in JetStream (a private nats-server), the engine runs in this process, and the browser's
 * anonymous page view and click end up under user_id u1 in XREF_GROUPS.
 *
 * Headless Chromium is Debian's (/usr/bin/chromium), driven by playwright-core: no browser is
 * downloaded. `.ci/run` installs it when missing; without it this test fails saying so.
 */
import { existsSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { XrefEvent } from '../../src/domain/envelope.ts';
import { type Collector, startCollector } from '../helpers/collector.ts';
import { type GroupMessage, eventsVia, ofUser, readStream, waitFor } from '../helpers/streams.ts';

const CHROMIUM = '/usr/bin/chromium';
const WRITE_KEY = 'wk_e2e_browser';
const REPO = fileURLToPath(new URL('../..', import.meta.url));


/** analytics.js from node_modules, as a site's bundler would ship it (here: one IIFE). */
async function bundleAnalytics(): Promise<string> {
  const result = await build({
    stdin: { contents: "import { AnalyticsBrowser } from '@segment/analytics-next';\nwindow.AnalyticsBrowser = AnalyticsBrowser;\n", resolveDir: REPO, loader: 'js' },
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

/** The site: its only xref-specific line is `cdnURL`. */
function sitePage(xref: string): string {
  return `<!doctype html>
<html><head><title>Pricing</title><script src="/analytics.js"></script></head>
<body><h1>Pricing</h1>
<script>
  const analytics = AnalyticsBrowser.load({ writeKey: ${JSON.stringify(WRITE_KEY)}, cdnURL: ${JSON.stringify(xref)} });
  window.visit = (async () => {
    await analytics.page();
    await analytics.track('Clicked', { button: 'hero' });
    await analytics.identify('u1', { plan: 'pro' });
    const [instance] = await analytics;
    return instance.user().anonymousId();
  })();
</script></body></html>`;
}

/** `promise`, or an error saying `what()` (evaluated then) after `ms`. */
async function within<T>(ms: number, what: () => string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what()}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('analytics.js in headless Chromium → HTTP collector → JetStream → engine', () => {
  let nc: NatsConnection;
  let collector: Collector;
  let site: Server;
  let browser: Browser;
  let xref: string;
  let siteUrl: string;

  beforeAll(async () => {
    // no XREF_PUBLIC_URL: the settings document points at the Host the browser used
    collector = await startCollector({ writeKey: WRITE_KEY });
    ({ nc, url: xref } = collector);

    const script = await bundleAnalytics();
    const html = sitePage(xref);
    site = createServer((request, response) => {
      if (request.url === '/analytics.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
      else if (request.url === '/') response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
      else if (request.url === '/favicon.ico') response.writeHead(204).end();
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;

  });
  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => (site?.listening ? site.close(resolve) : resolve(undefined)));
    await collector?.close();
  });

  it('anonymous page() and track(), then identify("u1"): the anonymous events land under user_id u1', async () => {
    // in the test, not in a hook: without Chromium this test fails (a failing hook would skip it)
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium is not installed at ${CHROMIUM}: this browser test needs Debian's chromium. Run .ci/run (it installs chromium when missing), or apt-get install chromium`);
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    const requests: string[] = [];
    const answers: string[] = [];
    page.on('request', (request) => requests.push(`${request.method()} ${request.url()}`));
    page.on('response', (response) => {
      if (response.url().startsWith(xref) && response.request().method() !== 'OPTIONS') answers.push(`${response.status()} ${response.request().method()} ${response.url().slice(xref.length)}`);
    });

    await page.goto(siteUrl);
    const anonymousId = (await within(20_000, () => `the page's calls; the browser said: ${[...problems, ...answers].join('; ') || 'nothing'}`, page.evaluate('window.visit'))) as string;
    expect(problems).toEqual([]);
    expect(typeof anonymousId).toBe('string');
    expect(anonymousId.length).toBeGreaterThan(0);

    // analytics.js read its settings from xref and sent every call back to xref, nowhere else
    expect(answers).toEqual([`200 GET /v1/projects/${WRITE_KEY}/settings`, '200 POST /v1/p', '200 POST /v1/t', '200 POST /v1/i']);
    expect(requests.filter((request) => !request.includes(xref) && !request.includes(siteUrl))).toEqual([]);

    await waitFor('the three calls in XREF_IN', async () => (await jetstreamManager(nc).then((jsm) => jsm.streams.info('XREF_IN'))).state.messages >= 3, 10_000);
    const input = await readStream<XrefEvent>(nc, 'XREF_IN');
    expect(input).toHaveLength(3);
    const byName = Object.fromEntries(input.map((m) => [m.data.name, m.data]));
    expect(Object.keys(byName).sort()).toEqual(['Clicked', 'identify', 'page']);
    expect(byName.page).toMatchObject({ ids: { anonymous_id: anonymousId }, data: { path: '/', title: 'Pricing', url: `${siteUrl}/` }, context: { library: { name: 'analytics.js' } } });
    expect(byName.Clicked).toMatchObject({ ids: { anonymous_id: anonymousId }, data: { button: 'hero' } });
    expect(byName.identify).toMatchObject({ ids: { anonymous_id: anonymousId, user_id: 'u1' }, data: { plan: 'pro' } });
    for (const m of input) expect(m.msgId).toBe(m.data.id); // analytics.js's messageId is the dedup id

    await collector.runEngine(input.length);

    const groups = await readStream<GroupMessage>(nc, 'XREF_GROUPS');
    const mine = ofUser(groups, 'user_id', 'u1');
    expect(mine.map((m) => m.subject)).toEqual(Array(3).fill('xref.groups.user_id.u1'));
    const via = (kind: string, value: string) => eventsVia(mine, kind, value, (event) => event.name);
    expect(via('anonymous_id', anonymousId)).toEqual(['Clicked', 'page']);
    expect(via('user_id', 'u1')).toEqual(['identify']);
    await page.close();
  });
});
