/**
 * Errors with stable codes, shared by every layer. imports nothing.
 * A code never changes meaning once released; messages may.
 */
export class SetlsError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'SetlsError';
  }
}

/** Raised by ByteReader when input is shorter than announced or not consumed exactly. */
export class DecodeError extends SetlsError {
  constructor(message: string) {
    super('ERR_DECODE', message);
    this.name = 'DecodeError';
  }
}
