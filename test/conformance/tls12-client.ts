/**
 * A minimal test-only TLS 1.2 client (ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 over X25519, extended
 * master secret, session IDs and tickets) for the negative-conformance tests: full and abbreviated
 * handshakes with a setls server over a raw socket, so a test can send crafted records at any point
 * and read the server's alert (plaintext before the server's ChangeCipherSpec, protected after).
 * It verifies the server Finished (a check on the keys) but not the certificate or the
 * ServerKeyExchange signature.
 * imports src/tls PRF / record protection / crypto (tests may), test helpers.
 */
import { concat } from '../../src/bytes/index.js';
import { GROUPS, hash } from '../../src/tls/crypto.js';
import { keyBlock12, masterSecret12, verifyData12 } from '../../src/tls/keyschedule/prf12.js';
import { AEAD_SUITES12 } from '../../src/tls/record/aead-suites12.js';
import { RecordKey12 } from '../../src/tls/record/protection12.js';
import { clientHelloMessage } from '../tls/helpers/clientHello.js';
import { RawConn, record, type Alert } from './raw-conn.js';
import type { ServerAnswer } from './tls13-client.js';

const X25519 = 0x001d;
export const ECDHE_ECDSA_AES128_GCM = 0xc02b;
const SUITE = AEAD_SUITES12.get(ECDHE_ECDSA_AES128_GCM)!;

export interface Hello12Options {
  /** Offer extended_master_secret (default true). */
  readonly ems?: boolean;
  readonly sessionId?: Uint8Array;
  /** session_ticket extension: a ticket to resume, empty = ask for one (default), null = not sent. */
  readonly ticket?: Uint8Array | null;
  /** Cipher suites (default ECDHE_ECDSA_WITH_AES_128_GCM_SHA256). */
  readonly suites?: number[];
  /** supported_versions (default none: a TLS 1.2 client). */
  readonly versions?: number[];
  readonly legacyVersion?: number;
}

/** What a session can be resumed with. */
export interface Session12 {
  readonly sessionId: Uint8Array;
  readonly ticket: Uint8Array | undefined;
}

function u24(b: Uint8Array, o: number): number {
  return (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!;
}

export class Tls12Client {
  private readonly eph = GROUPS.get(X25519)!.generate();
  private readonly transcript: Uint8Array[] = [];
  private clientRandom = new Uint8Array(32);
  private serverRandom = new Uint8Array(32);
  private serverPoint: Uint8Array | undefined;
  private master: Uint8Array | undefined;
  private clientKey: RecordKey12 | undefined;
  private serverKey: RecordKey12 | undefined;
  /** The server switched to its keys (its ChangeCipherSpec came). */
  private serverProtected = false;
  private pendingHandshake: Uint8Array = new Uint8Array(0);
  /** Session ID the server gave (ServerHello) and ticket (NewSessionTicket). */
  sessionId: Uint8Array = new Uint8Array(0);
  ticket: Uint8Array | undefined;
  resumed = false;

  constructor(readonly conn: RawConn) {}

  /** Connects; with `t`, the socket is closed when the test ends (a failed test never blocks the next). */
  static async connect(port: number, t?: { after(fn: () => void): void }): Promise<Tls12Client> {
    const c = new Tls12Client(await RawConn.open(port));
    t?.after(() => c.conn.close());
    return c;
  }

  clientHello(o: Hello12Options = {}): Uint8Array {
    const extra: { type: number; data: Uint8Array }[] = [
      { type: 11, data: Uint8Array.of(1, 0) }, // ec_point_formats: uncompressed
      { type: 0xff01, data: Uint8Array.of(0) }, // renegotiation_info, empty
    ];
    if (o.ems !== false) extra.push({ type: 23, data: new Uint8Array(0) });
    if (o.ticket !== null) extra.push({ type: 35, data: o.ticket ?? new Uint8Array(0) });
    const m = clientHelloMessage({
      sni: 'localhost',
      alpn: ['http/1.1'],
      suites: o.suites ?? [ECDHE_ECDSA_AES128_GCM],
      groups: [X25519, 0x0017], // secp256r1 too: the card's ECDSA key is P-256 (RFC 8422 §5.1)
      shares: null,
      versions: o.versions ?? null,
      sigalgs: [0x0403, 0x0804],
      extra,
      ...(o.sessionId ? { sessionId: o.sessionId } : {}),
    });
    if (o.legacyVersion !== undefined) {
      m[4] = o.legacyVersion >> 8;
      m[5] = o.legacyVersion & 0xff;
    }
    return m;
  }

  sendClientHello(o: Hello12Options = {}): void {
    const m = this.clientHello(o);
    this.clientRandom = m.slice(6, 38);
    this.sessionId = o.sessionId?.slice() ?? new Uint8Array(0);
    this.transcript.push(m);
    this.conn.send(record(22, m, 0x0301));
  }

  /** The next handshake message from the server (plaintext before its CCS, protected after). */
  private async nextMessage(): Promise<Uint8Array> {
    for (;;) {
      if (this.pendingHandshake.length >= 4) {
        const n = u24(this.pendingHandshake, 1);
        if (this.pendingHandshake.length >= 4 + n) {
          const m = this.pendingHandshake.slice(0, 4 + n);
          this.pendingHandshake = this.pendingHandshake.slice(4 + n);
          return m;
        }
      }
      const r = await this.conn.record();
      if (!r) throw new Error('the server closed during the handshake');
      if (r[0] === 21) throw new Error(`the server sent alert ${r[r.length - 1]} during the handshake`);
      if (r[0] === 20) {
        this.serverProtected = true;
        continue;
      }
      if (r[0] !== 22) throw new Error(`unexpected record type ${r[0]} in the server flight`);
      const content = this.serverProtected ? this.serverKey!.open(r)?.content : r.subarray(5);
      if (!content) throw new Error('a server handshake record did not open');
      this.pendingHandshake = concat(this.pendingHandshake, content);
    }
  }

  /**
   * ServerHello … ServerHelloDone (full handshake), or ServerHello, CCS, Finished (resumption of
   * `resume`, whose master secret this client kept).
   */
  async readServerFlight(resume?: { master: Uint8Array }): Promise<void> {
    const sh = await this.nextMessage();
    if (sh[0] !== 2) throw new Error(`expected ServerHello, got handshake type ${sh[0]}`);
    this.transcript.push(sh);
    this.serverRandom = sh.slice(6, 38);
    const sidLen = sh[38]!;
    const sid = sh.slice(39, 39 + sidLen);
    this.resumed = resume !== undefined && sidLen > 0 && Buffer.compare(Buffer.from(sid), Buffer.from(this.sessionId)) === 0;
    this.sessionId = sid;
    if (this.resumed) {
      this.master = resume!.master.slice();
      this.deriveKeys();
      const fin = await this.nextMessage();
      this.checkServerFinished(fin);
      return;
    }
    for (;;) {
      const m = await this.nextMessage();
      this.transcript.push(m);
      if (m[0] === 12) {
        // ServerKeyExchange: curve_type(1)=3, named_curve(2), point<1..255>, signature…
        this.serverPoint = m.slice(4 + 4, 4 + 4 + m[4 + 3]!);
      } else if (m[0] === 14) {
        return;
      }
    }
  }

  private deriveKeys(): void {
    const kb = keyBlock12(SUITE.hash, this.master!, this.clientRandom, this.serverRandom, SUITE.keyLength, SUITE.fixedIvLength);
    this.clientKey = new RecordKey12(SUITE, kb.client.key, kb.client.iv);
    this.serverKey = new RecordKey12(SUITE, kb.server.key, kb.server.iv);
  }

  private handshakeHash(): Uint8Array {
    return hash(SUITE.hash, concat(...this.transcript));
  }

  private checkServerFinished(fin: Uint8Array): void {
    if (fin[0] !== 20) throw new Error(`expected Finished, got handshake type ${fin[0]}`);
    const expected = verifyData12(SUITE.hash, this.master!, false, this.handshakeHash());
    if (Buffer.compare(Buffer.from(expected), Buffer.from(fin.subarray(4))) !== 0) throw new Error('server Finished does not verify');
    this.transcript.push(fin);
  }

  /** ClientKeyExchange (plaintext), derives the master secret (EMS) and keys. */
  clientKeyExchange(): Uint8Array {
    const pub = this.eph.publicKey;
    const cke = concat(Uint8Array.of(16, 0, 0, pub.length + 1, pub.length), pub);
    this.transcript.push(cke);
    const pms = this.eph.deriveShared(this.serverPoint!);
    this.master = masterSecret12(SUITE.hash, pms, this.clientRandom, this.serverRandom, this.handshakeHash());
    this.deriveKeys();
    return record(22, cke);
  }

  /** The client Finished message (for the transcript so far). */
  finishedMessage(): Uint8Array {
    const v = verifyData12(SUITE.hash, this.master!, true, this.handshakeHash());
    return concat(Uint8Array.of(20, 0, 0, v.length), v);
  }

  /** A record protected under the client write key. */
  seal(type: number, content: Uint8Array): Uint8Array {
    return this.clientKey!.seal(type, content);
  }

  /** Client Finished flight: [CKE] CCS Finished; then the server's [NewSessionTicket] CCS Finished. */
  async finish(): Promise<void> {
    const out: Uint8Array[] = [];
    if (!this.resumed) out.push(this.clientKeyExchange());
    out.push(record(20, Uint8Array.of(1)));
    const fin = this.finishedMessage();
    out.push(this.seal(22, fin));
    this.transcript.push(fin);
    this.conn.send(...out);
    if (this.resumed) return;
    for (;;) {
      const m = await this.nextMessage();
      if (m[0] === 4) {
        this.transcript.push(m);
        const n = (m[8]! << 8) | m[9]!;
        this.ticket = m.slice(10, 10 + n);
        continue;
      }
      this.checkServerFinished(m);
      return;
    }
  }

  /** A full handshake; returns what a later connection can resume with. */
  async handshake(o: Hello12Options = {}): Promise<Session12 & { master: Uint8Array }> {
    this.sendClientHello(o);
    await this.readServerFlight();
    await this.finish();
    return { sessionId: this.sessionId, ticket: this.ticket, master: this.master!.slice() };
  }

  /** The server's next alert (plaintext, or protected once the server sent its CCS), or 'closed'. */
  async readAlert(): Promise<ServerAnswer> {
    for (;;) {
      const r = await this.conn.record();
      if (!r) return 'closed';
      if (r[0] === 20) {
        this.serverProtected = true;
        continue;
      }
      const content = this.serverProtected ? this.serverKey!.open(r)?.content : r.subarray(5);
      if (!content) throw new Error('a server record did not open under the expected key');
      if (r[0] === 21) {
        if (content.length !== 2) throw new Error(`alert of ${content.length} bytes`);
        return { level: content[0]!, description: content[1]! } satisfies Alert;
      }
    }
  }

  /** Positive control: one HTTP/1.1 request (Connection: close); the response, read to close_notify. */
  async get(path: string): Promise<string> {
    const req = `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`;
    this.conn.send(this.seal(23, new TextEncoder().encode(req)));
    let text = '';
    for (;;) {
      const r = await this.conn.record();
      if (!r) throw new Error(`the server closed without close_notify after ${JSON.stringify(text.slice(0, 40))}`);
      const opened = this.serverKey!.open(r);
      if (!opened) throw new Error('a server record did not open');
      if (r[0] === 23) text += Buffer.from(opened.content).toString('latin1');
      if (r[0] === 21) {
        if (opened.content[1] !== 0) throw new Error(`alert ${opened.content[1]} instead of the response`);
        return text;
      }
    }
  }
}
