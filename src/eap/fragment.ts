/**
 * EAP-TLS fragmentation and reassembly (RFC 5216 §2.1.5). The first fragment of a message carries
 * the L flag and the total TLS-Message-Length; every fragment but the last carries M; each
 * fragment is acknowledged by an empty EAP-TLS packet of the other direction.
 * imports bytes/.
 */
import { SetlsError } from '../bytes/index.js';
import { EapTlsFlag, type EapTlsPacket } from './packet.js';

export interface EapTlsFragment {
  readonly flags: number;
  readonly tlsLength?: number;
  readonly data: Uint8Array;
}

/**
 * Cuts a TLS message into EAP-TLS fragments of at most `maxData` TLS bytes. A message that fits one
 * fragment still carries L (setls always announces the length). An empty message gives one
 * fragment with no flags (an ACK-shaped packet).
 */
export function fragmentTls(data: Uint8Array, maxData: number): EapTlsFragment[] {
  if (!Number.isInteger(maxData) || maxData < 1) throw new RangeError('maxData must be a positive integer');
  if (data.length === 0) return [{ flags: 0, data }];
  const out: EapTlsFragment[] = [];
  for (let o = 0; o < data.length; o += maxData) {
    const first = o === 0;
    const last = o + maxData >= data.length;
    const flags = (first ? EapTlsFlag.length : 0) | (last ? 0 : EapTlsFlag.more);
    const part = data.subarray(o, Math.min(data.length, o + maxData));
    out.push(first ? { flags, tlsLength: data.length, data: part } : { flags, data: part });
  }
  return out;
}

/**
 * Reassembles fragments into one TLS message, with a hard bound on its size. `push()` returns
 * the whole message once the last fragment arrives, or undefined while more are expected.
 */
export class EapTlsReassembler {
  private parts: Uint8Array[] = [];
  private got = 0;
  private expected: number | undefined;

  constructor(private readonly maxMessage: number) {}

  get inProgress(): boolean {
    return this.parts.length > 0 || this.expected !== undefined;
  }

  push(p: EapTlsPacket): Uint8Array | undefined {
    const more = (p.flags & EapTlsFlag.more) !== 0;
    if (p.flags & EapTlsFlag.length) {
      if (this.inProgress) throw new SetlsError('ERR_EAP_FRAGMENT', 'L flag on a fragment that is not the first');
      const n = p.tlsLength!;
      if (n > this.maxMessage) {
        throw new SetlsError('ERR_EAP_TOO_LARGE', `TLS message of ${n} bytes exceeds the ${this.maxMessage}-byte bound`);
      }
      this.expected = n;
    } else if (!this.inProgress && more) {
      throw new SetlsError('ERR_EAP_FRAGMENT', 'first fragment of a fragmented message lacks the L flag');
    }
    this.got += p.data.length;
    if (this.got > (this.expected ?? this.maxMessage)) {
      this.reset();
      throw new SetlsError('ERR_EAP_FRAGMENT', 'fragments exceed the announced TLS-Message-Length');
    }
    this.parts.push(p.data);
    if (more) return undefined;
    if (this.expected !== undefined && this.got !== this.expected) {
      const e = this.expected;
      const g = this.got;
      this.reset();
      throw new SetlsError('ERR_EAP_FRAGMENT', `TLS-Message-Length ${e} but ${g} bytes arrived`);
    }
    const out = new Uint8Array(this.got);
    let o = 0;
    for (const part of this.parts) {
      out.set(part, o);
      o += part.length;
    }
    this.reset();
    return out;
  }

  reset(): void {
    this.parts = [];
    this.got = 0;
    this.expected = undefined;
  }
}
