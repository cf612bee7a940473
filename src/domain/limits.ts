/** Size limits of the envelope (docs/architecture.md, the event envelope). All sizes in bytes of UTF-8 JSON, or characters. */
export interface Limits {
  /** Largest event, as UTF-8 JSON bytes. */
  readonly eventBytes: number;
  /** Largest batch (a request body, a file line group), as UTF-8 bytes. */
  readonly batchBytes: number;
  /** Longest identifier value, in characters. */
  readonly idValueChars: number;
  /** Longest identifier kind name, in characters. */
  readonly kindChars: number;
}

export function defaultLimits(): Limits {
  return Object.freeze({ eventBytes: 32 * 1024, batchBytes: 500 * 1024, idValueChars: 256, kindChars: 64 });
}
