import type { Readable, Transform } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { quote } from '../domain/errors.ts';
import { HttpError } from './errors.ts';

const DECODERS: Record<string, () => Transform> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/**
 * The request body as sent, decompressed when it has a `Content-Encoding` (RudderStack's Node SDK,
 * for one, can gzip its batches). The body limit then applies to the decompressed bytes, so a
 * small compressed body cannot expand past it. `receivedEncodedLength` tells fastify how many
 * bytes came over the wire, for its Content-Length check.
 */
export function decodedBody(encoding: string | undefined, payload: Readable): Readable {
  const name = encoding?.trim().toLowerCase();
  if (name === undefined || name === '' || name === 'identity') return payload;
  const decoder = DECODERS[name];
  if (decoder === undefined) {
    throw new HttpError('XREF_UNSUPPORTED_MEDIA_TYPE', `Content-Encoding ${quote(encoding)} is not supported: send the body as is, or as gzip, deflate or br`, {
      field: 'content-encoding',
    });
  }
  const decoded = Object.assign(decoder(), { receivedEncodedLength: 0 });
  payload.on('data', (chunk: Buffer) => (decoded.receivedEncodedLength += chunk.length));
  payload.on('error', (error) => decoded.destroy(error));
  return payload.pipe(decoded);
}

/** A decompression failure (zlib's codes start with Z_) as the client's error. */
export function isDecodingError(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('Z_');
}
