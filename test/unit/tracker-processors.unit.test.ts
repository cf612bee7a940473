/**
 * Processors: a chain that reshapes events (rename, add, delete), a failing processor logged,
 * counted and undone while the chain goes on, EventEmissionExit cancelling, and the built-ins
 * regexFilter (anchored at both ends), nameAllowlist and redact.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { isXrefError } from '../../src/domain/errors.ts';
import { processorCounters } from '../../src/tracker/processors.ts';
import {
  EventEmissionExit,
  type Processor,
  type TrackerEvent,
  createTracker,
  isEmissionExit,
  memoryBackend,
  nameAllowlist,
  redact,
  regexFilter,
  runProcessors,
} from '../../src/tracker/index.ts';

function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'trace' }, new Writable({ write: (chunk, _encoding, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  return { logger, lines };
}

function event(name = 'pageview', data: Record<string, unknown> = {}, context: Record<string, unknown> = {}): TrackerEvent {
  return { id: '0190d7a0-0000-7000-8000-000000000000', name, timestamp: '2026-01-01T00:00:00.000Z', ids: {}, data, context };
}

const rename: Processor = (e) => {
  e.name = `edx.${e.name}`;
};
const quiet = captureLogger().logger;

/** Whether the processor lets the event with this name through. */
function passes(processor: Processor, name: string): boolean {
  return runProcessors([processor], event(name), quiet, processorCounters()) !== undefined;
}

describe('a processor chain', () => {
  it('renames, adds and deletes fields, in place or by returning a new event, in order', () => {
    const chain: Processor[] = [
      (e) => {
        e.data.course = e.data.course_id;
        delete e.data.course_id;
      },
      (e) => ({ ...e, name: `${e.name}.v2`, data: { ...e.data, added: true } }),
      (e) => {
        delete e.context.ip;
        e.data.order = e.data.added ? 'after the return' : 'before';
      },
    ];
    const counters = processorCounters();
    const out = runProcessors(chain, event('enroll', { course_id: 'c1', keep: 1 }, { ip: '1.2.3.4', agent: 'x' }), quiet, counters);
    expect(out).toMatchObject({ name: 'enroll.v2', data: { course: 'c1', keep: 1, added: true, order: 'after the return' }, context: { agent: 'x' } });
    expect(out?.data).not.toHaveProperty('course_id');
    expect(counters).toMatchObject({ cancelled: 0, errors: 0 });
  });

  it('goes on past a throwing processor with the event as it was before it: the rename after it is delivered', () => {
    const memory = memoryBackend();
    const { logger, lines } = captureLogger();
    const tracker = createTracker({
      logger,
      backends: { memory },
      processors: [
        function halfDone(e) {
          e.name = 'half-renamed';
          e.data.partial = true;
          delete e.data.keep;
          throw new Error('lookup failed');
        },
        rename,
      ],
    });
    tracker.emit('problem_check', { keep: 'me' });
    expect(memory.events.map((e) => [e.name, e.data])).toEqual([['edx.problem_check', { keep: 'me' }]]);
    expect(tracker.stats().processors).toEqual({ cancelled: 0, errors: 1 });
    expect(lines.find((line) => line.processor === 'halfDone')).toMatchObject({ level: 40, err: { message: 'lookup failed' }, event: { name: 'problem_check' } });
  });

  it('counts a processor that returns something other than an event as failed, and goes on', () => {
    const counters = processorCounters();
    const out = runProcessors([() => 'oops' as unknown as TrackerEvent, rename], event('x'), quiet, counters);
    expect(out?.name).toBe('edx.x');
    expect(counters.errors).toBe(1);
  });

  it('logs a processor that keeps failing at most once a second, and counts every failure', () => {
    const { logger, lines } = captureLogger();
    const counters = processorCounters();
    const failing: Processor = () => {
      throw new Error('always');
    };
    for (let i = 0; i < 50; i++) runProcessors([failing], event(), logger, counters);
    expect(counters.errors).toBe(50);
    expect(lines.length).toBeLessThan(5);
  });

  it('stops at EventEmissionExit: the processors after it do not run, and the event is cancelled', () => {
    const ran: string[] = [];
    const counters = processorCounters();
    const out = runProcessors(
      [
        () => void ran.push('first'),
        () => {
          throw new EventEmissionExit('not this one');
        },
        () => void ran.push('never'),
      ],
      event(),
      quiet,
      counters,
    );
    expect(out).toBeUndefined();
    expect(ran).toEqual(['first']);
    expect(counters).toMatchObject({ cancelled: 1, errors: 0 });
  });

  it('knows EventEmissionExit from another copy of the module by its brand', () => {
    const foreign = { [Symbol.for('xref.tracker.EventEmissionExit')]: true };
    expect(isEmissionExit(foreign)).toBe(true);
    expect(isEmissionExit(new EventEmissionExit())).toBe(true);
    expect(isEmissionExit(new Error('x'))).toBe(false);
  });
});

describe('regexFilter', () => {
  it('anchors patterns at both ends: a pattern must match the whole name', () => {
    const allow = regexFilter({ type: 'allowlist', patterns: ['page', 'edx\\.video\\..*'] });
    expect(passes(allow, 'page')).toBe(true);
    expect(passes(allow, 'pageview')).toBe(false);
    expect(passes(allow, 'mypage')).toBe(false);
    expect(passes(allow, 'edx.video.play')).toBe(true);
    expect(passes(allow, 'edx.videos')).toBe(false);
  });

  it('blocklist cancels the names that match and passes the others', () => {
    const block = regexFilter({ type: 'blocklist', patterns: ['debug\\..*', 'heartbeat'] });
    expect(passes(block, 'debug.timing')).toBe(false);
    expect(passes(block, 'heartbeat')).toBe(false);
    expect(passes(block, 'heartbeats')).toBe(true);
    expect(passes(block, 'signup')).toBe(true);
  });

  it('allowlist [] blocks everything, blocklist [] passes everything', () => {
    const none = regexFilter({ type: 'allowlist', patterns: [] });
    const all = regexFilter({ type: 'blocklist', patterns: [] });
    for (const name of ['a', 'unknown', '', 'edx.video.play']) {
      expect(passes(none, name)).toBe(false);
      expect(passes(all, name)).toBe(true);
    }
  });

  it('an invalid pattern or type is a config error at construction, naming it', () => {
    const error = (options: unknown) => {
      try {
        regexFilter(options as Parameters<typeof regexFilter>[0]);
      } catch (caught) {
        return isXrefError(caught, 'XREF_INVALID_CONFIG') ? caught.message : caught;
      }
      return 'no error';
    };
    expect(error({ type: 'allowlist', patterns: ['ok', '(unclosed'] })).toMatch(/^config regexFilter\.patterns\[1\] must be a valid regular expression \(.+\), got "\(unclosed"$/);
    // valid only inside the group the filter wraps it in: it would escape the anchors
    expect(error({ type: 'allowlist', patterns: ['a)|(b'] })).toMatch(/^config regexFilter\.patterns\[0\] must be a valid regular expression/);
    expect(error({ type: 'denylist', patterns: [] })).toBe('config regexFilter.type must be "allowlist" or "blocklist", got "denylist"');
    expect(error({ type: 'allowlist', patterns: 'a' })).toMatch(/^config regexFilter\.patterns must be an array/);
  });
});

describe('nameAllowlist', () => {
  it('passes the names listed, exactly, and [] passes none', () => {
    const allow = nameAllowlist(['signup', 'login']);
    expect(passes(allow, 'signup')).toBe(true);
    expect(passes(allow, 'Signup')).toBe(false);
    expect(passes(allow, 'signups')).toBe(false);
    expect(passes(nameAllowlist([]), 'signup')).toBe(false);
    expect(() => nameAllowlist(['a', 3 as unknown as string])).toThrow('config nameAllowlist.names[1] must be a string, got 3');
  });
});

describe('redact', () => {
  it('removes data, context and nested fields, and skips paths that are not there', () => {
    const e = event('login', { password: 'hunter2', user: 'u1', card: { number: '4111', brand: 'visa' } }, { ip: '1.2.3.4', agent: 'x' });
    const out = runProcessors([redact(['data.password', 'context.ip', 'data.card.number', 'data.missing.deep', 'context.agent.x'])], e, quiet, processorCounters());
    expect(out).toMatchObject({ data: { user: 'u1', card: { brand: 'visa' } }, context: { agent: 'x' } });
    expect(out?.data).not.toHaveProperty('password');
    expect(out?.context).not.toHaveProperty('ip');
  });

  it('never changes an object the event shares with the caller', () => {
    const memory = memoryBackend();
    const tracker = createTracker({ backends: { memory }, processors: [redact(['data.card.number', 'data.secret'])] });
    const data = { card: { number: '4111', brand: 'visa' }, secret: 's' };
    tracker.emit('pay', data);
    expect(data).toEqual({ card: { number: '4111', brand: 'visa' }, secret: 's' });
    expect(memory.events[0]?.data).toEqual({ card: { brand: 'visa' } });
  });

  it('refuses a path with an empty segment', () => {
    expect(() => redact(['data..x'])).toThrow('config redact.paths[0] must be a dotted path such as "data.password" (no empty segment), got "data..x"');
  });
});
