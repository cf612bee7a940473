/**
 * The collector's content-type parsers: it takes JSON only, however the SDKs label it
 * (application/json, text/plain from analytics.js, application/x-www-form-urlencoded from
 * RudderStack's), and refuses a "__proto__" key.
 */
import type { FastifyRequest } from 'fastify';
import { quote } from '../domain/errors.ts';
import { HttpError } from './errors.ts';

/** The media types whose bodies are read as JSON, as the 415 names them. */
export const JSON_MEDIA_TYPES = 'application/json, text/plain (analytics.js) or application/x-www-form-urlencoded (RudderStack\'s SDKs)';

type Done = (error: Error | null, value?: unknown) => void;

/** Parses application/json and text/plain (analytics.js sends JSON as text/plain) bodies as JSON. */
export function parseJson(_request: FastifyRequest, body: string | Buffer, done: Done): void {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  if (text.trim().length === 0) {
    done(new HttpError('XREF_INVALID_JSON', 'the body is empty: send a JSON object or array', { field: 'body' }));
    return;
  }
  try {
    const value: unknown = text.includes('"__proto__"')
      ? JSON.parse(text, (key, v: unknown) => {
          if (key === '__proto__') throw new SyntaxError('a "__proto__" key is refused');
          return v;
        })
      : JSON.parse(text);
    done(null, value);
  } catch (error) {
    done(new HttpError('XREF_INVALID_JSON', `the body is not valid JSON (${(error as Error).message})`, { field: 'body' }));
  }
}

/**
 * RudderStack's Node SDK (axios) labels its JSON, gzipped or not, application/x-www-form-urlencoded:
 * such a body is read as JSON when it is JSON. A real form (`a=1&b=2`) is refused naming the
 * Content-Type, since xref takes JSON only.
 */
export function parseLabelledJson(request: FastifyRequest, body: string | Buffer, done: Done): void {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const start = text.trimStart()[0];
  if (start === undefined || start === '{' || start === '[') {
    parseJson(request, text, done);
    return;
  }
  done(
    new HttpError('XREF_UNSUPPORTED_MEDIA_TYPE',
      `Content-Type ${quote(request.headers['content-type'])} is read as JSON only, and this body is not JSON (it does not start with { or [): send a JSON body`,
      { field: 'content-type' },
    ),
  );
}
