/** ByteWriter: a growable buffer with length-prefixed blocks. imports nothing outside bytes/. */

export class ByteWriter {
  private buf: Uint8Array;
  private len = 0;
  /** The default initial size stays within V8's on-heap typed arrays (≤ 64 bytes: no backing-store allocation). */
  constructor(initial = 64) {
    this.buf = new Uint8Array(initial);
  }
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf.fill(0);
    this.buf = nb;
  }
  get length(): number {
    return this.len;
  }
  u8(v: number): this {
    this.ensure(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }
  u16(v: number): this {
    this.ensure(2);
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
    return this;
  }
  u24(v: number): this {
    this.ensure(3);
    this.buf[this.len++] = (v >>> 16) & 0xff;
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
    return this;
  }
  u32(v: number): this {
    this.ensure(4);
    this.buf[this.len++] = (v >>> 24) & 0xff;
    this.buf[this.len++] = (v >>> 16) & 0xff;
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }
  /** Bytes with an n-byte length prefix; throws if they do not fit the prefix. */
  vec(lenBytes: 1 | 2 | 3, b: Uint8Array): this {
    const max = lenBytes === 1 ? 0xff : lenBytes === 2 ? 0xffff : 0xffffff;
    if (b.length > max) throw new RangeError(`vector of ${b.length} bytes exceeds ${lenBytes}-byte length prefix`);
    if (lenBytes === 1) this.u8(b.length);
    else if (lenBytes === 2) this.u16(b.length);
    else this.u24(b.length);
    return this.bytes(b);
  }
  /**
   * A block whose length prefix is filled in after fn wrote its body (into this writer, after a
   * placeholder prefix); throws if the body does not fit the prefix.
   */
  block(lenBytes: 1 | 2 | 3, fn: (w: ByteWriter) => void): this {
    const max = lenBytes === 1 ? 0xff : lenBytes === 2 ? 0xffff : 0xffffff;
    this.ensure(lenBytes);
    const at = this.len;
    this.len += lenBytes;
    fn(this);
    const n = this.len - at - lenBytes;
    if (n > max) throw new RangeError(`vector of ${n} bytes exceeds ${lenBytes}-byte length prefix`);
    for (let i = lenBytes - 1, v = n; i >= 0; i--, v >>>= 8) this.buf[at + i] = v & 0xff;
    return this;
  }
  /** The written bytes as a fresh array. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}
