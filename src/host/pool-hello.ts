/**
 * The minimum of ClientHello parsing a TlsPool needs for scheduling, on bytes the host already
 * relays: is a COMPLETE ClientHello buffered (so a slow or silent client never holds a card), which
 * ticket key ids does it offer (TLS 1.3 pre_shared_key identities, TLS 1.2 session_ticket — a
 * ticket starts with a clear 4-byte key id, src/tls/tickets.ts), does it offer TLS 1.3. Only the
 * outer structure is walked; nothing is validated beyond what routing needs (the card does that).
 * Also: the ticket key id of a TLS 1.2 NewSessionTicket in a server flight (sent before
 * ChangeCipherSpec, in clear). imports nothing.
 */

export interface HelloPeek {
  /**
   * 'need': more bytes; 'complete': a whole ClientHello is buffered; 'bad': not a ClientHello (or too
   * big); 'overflow': a plaintext record longer than 2^14 bytes (RFC 8446 §5.1: record_overflow).
   */
  readonly state: 'need' | 'complete' | 'bad' | 'overflow';
  /** Ticket key ids offered (hex, 8 chars), in the client's order. */
  readonly keyIds: readonly string[];
  /** The ClientHello offers TLS 1.3 (supported_versions has 0x0304). */
  readonly tls13: boolean;
  /** Why 'bad' or 'overflow'. */
  readonly reason?: string;
}

const NEED: HelloPeek = { state: 'need', keyIds: [], tls13: false };
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Largest ClientHello the pool buffers before a card is assigned. */
export const MAX_HELLO_BYTES = 64 * 1024;

/** Looks at the bytes received so far (records, possibly partial). */
export function peekClientHello(buf: Uint8Array): HelloPeek {
  const hs: Uint8Array[] = [];
  let hsLen = 0;
  let off = 0;
  while (off + 5 <= buf.length) {
    const type = buf[off]!;
    const len = (buf[off + 3]! << 8) | buf[off + 4]!;
    if (type !== 22) return { state: 'bad', keyIds: [], tls13: false, reason: `first record has content type ${type}, not handshake` };
    if (buf[off + 1] !== 3 || len === 0) return { state: 'bad', keyIds: [], tls13: false, reason: 'malformed record header' };
    if (len > 16384) return { state: 'overflow', keyIds: [], tls13: false, reason: `a plaintext record of ${len} bytes (more than 2^14)` };
    if (off + 5 + len > buf.length) break;
    hs.push(buf.subarray(off + 5, off + 5 + len));
    hsLen += len;
    off += 5 + len;
  }
  // the first handshake byte names the message: anything but a ClientHello is refused at once
  if (hsLen > 0 && hs[0]![0] !== 1) return { state: 'bad', keyIds: [], tls13: false, reason: `first handshake message is type ${hs[0]![0]}, not ClientHello` };
  if (hsLen < 4) return off > MAX_HELLO_BYTES ? { state: 'bad', keyIds: [], tls13: false, reason: 'too big' } : NEED;
  const h = Buffer.concat(hs);
  if (h[0] !== 1) return { state: 'bad', keyIds: [], tls13: false, reason: `first handshake message is type ${h[0]}, not ClientHello` };
  const bodyLen = (h[1]! << 16) | (h[2]! << 8) | h[3]!;
  if (bodyLen > MAX_HELLO_BYTES) return { state: 'bad', keyIds: [], tls13: false, reason: 'ClientHello too big' };
  if (h.length < 4 + bodyLen) return NEED;
  return { state: 'complete', ...scanHello(h.subarray(4, 4 + bodyLen)) };
}

function scanHello(b: Uint8Array): { keyIds: string[]; tls13: boolean } {
  const keyIds: string[] = [];
  let tls13 = false;
  try {
    let p = 2 + 32;
    p += 1 + b[p]!; // legacy_session_id
    p += 2 + ((b[p]! << 8) | b[p + 1]!); // cipher_suites
    p += 1 + b[p]!; // compression
    if (p + 2 > b.length) return { keyIds, tls13 };
    const end = Math.min(b.length, p + 2 + ((b[p]! << 8) | b[p + 1]!));
    p += 2;
    while (p + 4 <= end) {
      const type = (b[p]! << 8) | b[p + 1]!;
      const len = (b[p + 2]! << 8) | b[p + 3]!;
      const body = b.subarray(p + 4, Math.min(end, p + 4 + len));
      p += 4 + len;
      if (type === 35 && body.length >= 4) keyIds.push(hex(body.subarray(0, 4)));
      else if (type === 43) {
        for (let i = 1; i + 1 < body.length; i += 2) if (body[i] === 3 && body[i + 1] === 4) tls13 = true;
      } else if (type === 41 && body.length >= 2) {
        const idsEnd = Math.min(body.length, 2 + ((body[0]! << 8) | body[1]!));
        let q = 2;
        while (q + 2 <= idsEnd) {
          const l = (body[q]! << 8) | body[q + 1]!;
          if (l >= 4 && q + 2 + l <= idsEnd) keyIds.push(hex(body.subarray(q + 2, q + 6)));
          q += 2 + l + 4;
        }
      }
    }
  } catch {
    // a truncated hello: route with what was found; the card rejects it properly
  }
  return { keyIds, tls13 };
}

/** The ticket key id of a TLS 1.2 NewSessionTicket (handshake type 4) in a plaintext server flight. */
export function ticketKeyIdInFlight(flight: Uint8Array): string | undefined {
  let off = 0;
  while (off + 5 <= flight.length) {
    const type = flight[off]!;
    const len = (flight[off + 3]! << 8) | flight[off + 4]!;
    if (type === 20) return undefined; // ChangeCipherSpec: what follows is encrypted
    if (type === 22) {
      const r = flight.subarray(off + 5, off + 5 + len);
      let q = 0;
      while (q + 4 <= r.length) {
        const mlen = (r[q + 1]! << 16) | (r[q + 2]! << 8) | r[q + 3]!;
        // NewSessionTicket (1.2): lifetime_hint(4) ticket<0..2^16-1>
        if (r[q] === 4 && q + 4 + 6 + 4 <= r.length) return hex(r.subarray(q + 4 + 6, q + 4 + 10));
        q += 4 + mlen;
      }
    }
    off += 5 + len;
  }
  return undefined;
}
