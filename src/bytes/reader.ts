/**
 * ByteReader: a cursor over bytes whose length-prefixed blocks must be consumed exactly.
 * imports nothing outside bytes/.
 */
import { DecodeError } from './errors.js';

export class ByteReader {
  private pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly what = 'input',
  ) {}

  get offset(): number {
    return this.pos;
  }
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  get done(): boolean {
    return this.pos === this.buf.length;
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) {
      throw new DecodeError(`${this.what}: needs ${n} more bytes at offset ${this.pos}, has ${this.remaining}`);
    }
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u24(): number {
    this.need(3);
    const v = (this.buf[this.pos]! << 16) | (this.buf[this.pos + 1]! << 8) | this.buf[this.pos + 2]!;
    this.pos += 3;
    return v;
  }
  u32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }
  /** n bytes as a view (no copy). */
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }
  /** Bytes with an n-byte length prefix (n = 1, 2 or 3). */
  vec(lenBytes: 1 | 2 | 3, min = 0, max = Infinity): Uint8Array {
    const n = lenBytes === 1 ? this.u8() : lenBytes === 2 ? this.u16() : this.u24();
    if (n < min || n > max) throw new DecodeError(`${this.what}: vector length ${n} outside ${min}..${max}`);
    return this.bytes(n);
  }
  /** A length-prefixed block parsed by fn, which must consume it exactly. */
  block<T>(lenBytes: 1 | 2 | 3, fn: (r: ByteReader) => T, what = this.what): T {
    const r = new ByteReader(this.vec(lenBytes), what);
    const v = fn(r);
    r.end();
    return v;
  }
  /** Throws unless everything was consumed. */
  end(): void {
    if (!this.done) throw new DecodeError(`${this.what}: ${this.remaining} trailing bytes at offset ${this.pos}`);
  }
}
