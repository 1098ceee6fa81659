/**
 * A minimal test-only TLS 1.3 client (X25519, TLS_AES_128_GCM_SHA256) for the negative-conformance
 * tests: it completes a handshake with a setls server over a raw socket so a test can then send
 * crafted records under the client's handshake or application keys and read the server's alert
 * under the server's keys. It checks only what it needs (the server Finished, as a sanity check on
 * the keys); it does not verify the certificate or CertificateVerify.
 * imports node:crypto, src/tls key schedule / crypto / record protection (tests may), test helpers.
 */
import { concat } from '../../src/bytes/index.js';
import { ContentType } from '../../src/tls/api.js';
import { GROUPS, SUITES, type SuiteParams } from '../../src/tls/crypto.js';
import { EarlySecret, finishedVerifyData, trafficKeys, type HandshakeSecret, type MasterSecret } from '../../src/tls/keyschedule/schedule.js';
import { Transcript } from '../../src/tls/keyschedule/transcript.js';
import { openRecord, sealRecord } from '../tls/helpers/records.js';
import { clientHelloMessage, type ChOptions } from '../tls/helpers/clientHello.js';
import { RawConn, record, type Alert } from './raw-conn.js';

const X25519 = 0x001d;
const AES128GCM = 0x1301;

function u24(b: Uint8Array, o: number): number {
  return (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!;
}

/** Whole handshake messages cut out of a stream of handshake record contents. */
class Messages {
  private buf: Uint8Array = new Uint8Array(0);
  push(b: Uint8Array): void {
    this.buf = concat(this.buf, b);
  }
  next(): Uint8Array | undefined {
    if (this.buf.length < 4) return undefined;
    const n = u24(this.buf, 1);
    if (this.buf.length < 4 + n) return undefined;
    const m = this.buf.slice(0, 4 + n);
    this.buf = this.buf.slice(4 + n);
    return m;
  }
}

/** What the server sent back after a crafted record: an alert, or a close without one. */
export type ServerAnswer = Alert | 'closed';

export class Tls13Client {
  readonly suite: SuiteParams = SUITES.get(AES128GCM)!;
  private readonly eph = GROUPS.get(X25519)!.generate();
  private readonly transcript = new Transcript('sha256');
  private hs: HandshakeSecret | undefined;
  private master: MasterSecret | undefined;
  private serverHsSecret: Uint8Array | undefined;
  private clientHsSecret: Uint8Array | undefined;
  /** Client write keys: handshake, then application. */
  clientHsKey: Direction | undefined;
  clientApKey: Direction | undefined;
  /** The key the server protects its records with now (handshake, then application). */
  private serverKey: Direction | undefined;
  private readonly inbox = new Messages();

  constructor(readonly conn: RawConn) {}

  /** Connects; with `t`, the socket is closed when the test ends (a failed test never blocks the next). */
  static async connect(port: number, t?: { after(fn: () => void): void }): Promise<Tls13Client> {
    const c = new Tls13Client(await RawConn.open(port));
    t?.after(() => c.conn.close());
    return c;
  }

  /** The ClientHello message (4-byte header included) with this client's key share; `o` overrides. */
  clientHello(o: ChOptions = {}): Uint8Array {
    return clientHelloMessage({
      sni: 'localhost',
      alpn: ['http/1.1'],
      suites: [AES128GCM],
      groups: [X25519],
      shares: [{ group: X25519, key: this.eph.publicKey }],
      sigalgs: [0x0403, 0x0804, 0x0805, 0x0806],
      ...o,
    });
  }

  /** Sends `message` (a ClientHello) as one plaintext record and hashes it into the transcript. */
  sendClientHello(message: Uint8Array = this.clientHello()): void {
    this.transcript.add(message);
    this.conn.send(record(22, message, 0x0301));
  }

  /** Hashes a ClientHello the test sent itself (e.g. in fragments). */
  noteClientHello(message: Uint8Array): void {
    this.transcript.add(message);
  }

  /** Reads the ServerHello and the encrypted server flight up to its Finished; derives every key. */
  async readServerFlight(): Promise<void> {
    const sh = await this.conn.record();
    if (!sh) throw new Error('the server closed instead of sending ServerHello');
    if (sh[0] !== ContentType.handshake) throw new Error(`expected ServerHello, got record type ${sh[0]} (${[...sh.subarray(5, 7)]})`);
    const msg = sh.slice(5);
    if (msg[0] !== 2) throw new Error(`expected ServerHello, got handshake type ${msg[0]}`);
    this.transcript.add(msg);
    const share = findKeyShare(msg);
    const shared = this.eph.deriveShared(share);
    this.hs = EarlySecret.create(this.suite, undefined).toHandshake(shared);
    const t = this.hs.trafficSecrets(this.transcript.current());
    this.clientHsSecret = t.client;
    this.serverHsSecret = t.server;
    this.clientHsKey = Direction.of(this.suite, t.client);
    this.serverKey = Direction.of(this.suite, t.server);
    for (;;) {
      const r = await this.conn.record();
      if (!r) throw new Error('the server closed during its flight');
      if (r[0] === ContentType.changeCipherSpec) continue;
      const opened = this.serverKey.open(r);
      if (!opened || opened.type !== ContentType.handshake) throw new Error('undecryptable or unexpected record in the server flight');
      this.inbox.push(opened.content);
      for (let m = this.inbox.next(); m; m = this.inbox.next()) {
        if (m[0] === 20) {
          const expected = finishedVerifyData(this.suite, this.serverHsSecret, this.transcript.current());
          if (Buffer.compare(Buffer.from(expected), Buffer.from(m.subarray(4))) !== 0) throw new Error('server Finished does not verify');
          this.transcript.add(m);
          this.master = this.hs.toMaster();
          const ap = this.master.applicationSecrets(this.transcript.current());
          this.clientApKey = Direction.of(this.suite, ap.client);
          this.serverKey = Direction.of(this.suite, ap.server);
          return;
        }
        this.transcript.add(m);
      }
    }
  }

  /** The client Finished message for the transcript so far (ClientHello … server Finished). */
  finishedMessage(): Uint8Array {
    const v = finishedVerifyData(this.suite, this.clientHsSecret!, this.transcript.current());
    return concat(Uint8Array.of(20, 0, 0, v.length), v);
  }

  /** A record protected under the client handshake key: content ‖ type ‖ `padding` zeros. */
  sealHs(type: number, content: Uint8Array, padding = 0): Uint8Array {
    return this.clientHsKey!.seal(type, content, padding);
  }

  /** A record protected under the client application key. */
  sealAp(type: number, content: Uint8Array, padding = 0): Uint8Array {
    return this.clientApKey!.seal(type, content, padding);
  }

  /** ClientHello, server flight, client Finished: the connection is then established. */
  async handshake(o: ChOptions = {}): Promise<void> {
    this.sendClientHello(this.clientHello(o));
    await this.readServerFlight();
    this.conn.send(this.sealHs(ContentType.handshake, this.finishedMessage()));
  }

  /**
   * Reads the server's records until an alert or the end of the connection. Plaintext alerts are
   * read as they are; protected records are opened with the server's current key (NewSessionTicket
   * and application data are skipped). A protected record that does not open fails the test.
   */
  async readAlert(): Promise<ServerAnswer> {
    for (;;) {
      const r = await this.conn.record();
      if (!r) return 'closed';
      if (r[0] === ContentType.alert) {
        if (r.length !== 7) throw new Error(`plaintext alert record of ${r.length - 5} bytes`);
        return { level: r[5]!, description: r[6]! };
      }
      if (r[0] !== ContentType.applicationData || !this.serverKey) throw new Error(`unexpected record type ${r[0]} from the server`);
      const opened = this.serverKey.open(r);
      if (!opened) throw new Error('a server record did not open under the expected key');
      if (opened.type === ContentType.alert) {
        if (opened.content.length !== 2) throw new Error(`protected alert of ${opened.content.length} bytes`);
        return { level: opened.content[0]!, description: opened.content[1]! };
      }
    }
  }

  /**
   * Positive control: one HTTP/1.1 request (Connection: close) under the application keys; returns
   * the response text, read until the server's close_notify.
   */
  async get(path: string): Promise<string> {
    const req = `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`;
    this.conn.send(this.sealAp(ContentType.applicationData, new TextEncoder().encode(req)));
    let text = '';
    for (;;) {
      const r = await this.conn.record();
      if (!r) throw new Error(`the server closed without close_notify after ${JSON.stringify(text.slice(0, 40))}`);
      const opened = this.serverKey!.open(r);
      if (!opened) throw new Error('a server record did not open');
      if (opened.type === ContentType.applicationData) text += Buffer.from(opened.content).toString('latin1');
      if (opened.type === ContentType.alert) {
        if (opened.content[1] !== 0) throw new Error(`alert ${opened.content[1]} instead of the response`);
        return text;
      }
    }
  }

  /** Hash of the transcript so far (tests that build their own messages). */
  transcriptHash(): Uint8Array {
    return this.transcript.current();
  }
}

/** One direction's traffic key, IV and sequence number (sealing/opening by test/tls/helpers/records.ts). */
export class Direction {
  seq = 0;
  constructor(
    private readonly key: Uint8Array,
    private readonly iv: Uint8Array,
  ) {}

  static of(suite: SuiteParams, secret: Uint8Array): Direction {
    const k = trafficKeys(suite, secret);
    return new Direction(k.key, k.iv);
  }

  /** TLSInnerPlaintext = content ‖ type ‖ zeros[padding], sealed (any length: tests build oversized ones). */
  seal(type: number, content: Uint8Array, padding = 0): Uint8Array {
    return sealRecord(this.key, this.iv, this.seq++, type, content, padding);
  }

  /** The inner type and content, or undefined when the record does not authenticate. */
  open(rec: Uint8Array): { type: number; content: Uint8Array } | undefined {
    let inner: Uint8Array;
    try {
      inner = openRecord(this.key, this.iv, this.seq, rec);
    } catch {
      return undefined;
    }
    this.seq++;
    let i = inner.length - 1;
    while (i >= 0 && inner[i] === 0) i--;
    return { type: inner[i]!, content: inner.subarray(0, i) };
  }
}

/** The key_share server_share of a ServerHello message (x25519: 32 bytes). */
function findKeyShare(sh: Uint8Array): Uint8Array {
  let o = 4 + 2 + 32;
  o += 1 + sh[o]!; // session id
  o += 2 + 1; // suite, compression
  const end = o + 2 + ((sh[o]! << 8) | sh[o + 1]!);
  o += 2;
  while (o < end) {
    const type = (sh[o]! << 8) | sh[o + 1]!;
    const len = (sh[o + 2]! << 8) | sh[o + 3]!;
    if (type === 51) return sh.slice(o + 4 + 4, o + 4 + len);
    o += 4 + len;
  }
  throw new Error('ServerHello without key_share');
}

