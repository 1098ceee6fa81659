/**
 * APDU trace tooling for the deterministic card (test/fixtures/card-trace): a seeded RNG, a recorder
 * that logs every command/response APDU pair, the recording script itself, and the replay check.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromHex, toHex } from '../../src/bytes/index.js';
import { EmulatedCard, type RandomSource } from '../../src/card/index.js';
import { ClientPipe, connectClient, driveHandshake, once } from './tls-host.js';
import { SELECT, a0, cmd, eapResponse, send, utf8, verify, USER_PIN, xcv } from './helpers.js';
import { parseEapTls } from '../../src/eap/index.js';
import { readU16 } from '../../src/bytes/index.js';

export const TRACE_FORMAT = 'setls-card-trace/v1';

export interface TraceEntry {
  /** What the host was doing (for humans and error messages). */
  readonly step: string;
  /** Command APDU, hex. */
  readonly c: string;
  /** Response APDU (data ‖ SW1 SW2), hex. */
  readonly r: string;
}

export interface TraceFile {
  readonly format: typeof TRACE_FORMAT;
  readonly note: string;
  /** Seed of `seededRandom`, the card's `random` while recording (and replaying). */
  readonly seed: string;
  /** GMT time bytes (Unix seconds) the host appended to the first EAP-Response. */
  readonly time: number;
  /** Folder (relative to the fixture) holding the sealed state before the trace. */
  readonly stateDir: string;
  /** File (relative to the fixture) holding the test-only master key, hex. */
  readonly masterKeyFile: string;
  readonly exchanges: readonly TraceEntry[];
}

/** A deterministic byte stream: SHA-256(seed ‖ counter(4)) blocks. Not for real cards. */
export function seededRandom(seed: string): RandomSource {
  let counter = 0;
  let pool = new Uint8Array(0);
  return (n: number) => {
    while (pool.length < n) {
      const c = Buffer.alloc(4);
      c.writeUInt32BE(counter++);
      const block = createHash('sha256').update(seed, 'utf8').update(c).digest();
      const next = new Uint8Array(pool.length + block.length);
      next.set(pool);
      next.set(block, pool.length);
      pool = next;
    }
    const out = pool.slice(0, n);
    pool = pool.slice(n);
    return out;
  };
}

/** Wraps a card: every `process` call is logged under the current step. */
export class Recorder {
  readonly entries: TraceEntry[] = [];
  step = '';
  constructor(private readonly card: EmulatedCard) {}
  /** A stand-in for the card that logs (only `process` is used by the helpers). */
  get proxy(): EmulatedCard {
    return { process: (apdu: Uint8Array) => this.process(apdu) } as unknown as EmulatedCard;
  }
  process(apdu: Uint8Array): Uint8Array {
    const r = this.card.process(apdu);
    this.entries.push({ step: this.step, c: toHex(apdu), r: toHex(r) });
    return r;
  }
}

/**
 * Records the reference session against `card` (deterministic, already opened): SELECT, VERIFY,
 * a full handshake with Node's client (START, INFO, FOLD), one DECRYPT (request) + ENCRYPT
 * (response), the card's close_notify (ENCRYPT alert), the client's close_notify (DECRYPT with
 * END), GET-STATE. Without `caPem` the client does not check the chain (the wire bytes are the same).
 */
export async function recordSession(card: EmulatedCard, caPem: string | undefined, time: number): Promise<TraceEntry[]> {
  const rec = new Recorder(card);
  const c = rec.proxy;
  const expectOk = (sw: number, what: string) => {
    if (sw !== 0x9000) throw new Error(`${what} answered ${sw.toString(16)}`);
  };
  rec.step = 'SELECT';
  expectOk(send(c, SELECT).sw, 'SELECT');
  rec.step = 'VERIFY user PIN';
  expectOk(send(c, verify(USER_PIN)).sw, 'VERIFY');
  // As the setls host drives it (host/session-driver.ts): no RESET-STATE (the first Response carries
  // START), INFO and FOLD on every handshake Response (the answer to the Finished carries the
  // tickets, the EAP-Success and the session info: no ACK), END on every DECRYPT.
  rec.step = 'handshake';
  const pipe = new ClientPipe();
  const client = connectClient(pipe, caPem ?? '', caPem === undefined ? { rejectUnauthorized: false } : {});
  const connected = once(client, 'secureConnect');
  const hs = await driveHandshake(c, pipe, { time, start: true, info: true, fold: true });
  if (hs.outcome !== 'success' || hs.folded !== true) throw new Error('the recorded handshake failed or was not folded');
  await connected;
  let id = hs.lastId;

  rec.step = 'DECRYPT request';
  client.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
  let r = await xcv(c, a0(0x80, 0x08, 0x00, eapResponse(id, await pipe.nextRecord())));
  expectOk(r.sw, 'DECRYPT');
  let p = parseEapTls(r.data);
  id = p.id;
  if (!new TextDecoder().decode(p.data.subarray(4, 4 + readU16(p.data, 2))).startsWith('GET / ')) throw new Error('DECRYPT gave the wrong plaintext');

  rec.step = 'ENCRYPT response';
  const got = once<Buffer>(client, 'data');
  r = await xcv(c, a0(0x80, 0x00, 0x97, eapResponse(id, utf8('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'))));
  expectOk(r.sw, 'ENCRYPT');
  p = parseEapTls(r.data);
  id = p.id;
  pipe.deliver(p.data);
  if (!(await got).toString().endsWith('ok')) throw new Error('the client did not get the response');

  rec.step = 'ENCRYPT close_notify';
  r = await xcv(c, a0(0x80, 0x00, 0x95, eapResponse(id, Uint8Array.of(0x01, 0x00))));
  expectOk(r.sw, 'ENCRYPT close_notify');
  p = parseEapTls(r.data);
  id = p.id;
  pipe.deliver(p.data);

  rec.step = 'DECRYPT client close_notify';
  client.end();
  r = await xcv(c, a0(0x80, 0x08, 0x00, eapResponse(id, await pipe.nextRecord())));
  expectOk(r.sw, 'DECRYPT close_notify');
  if (parseEapTls(r.data).data[0] !== 0x01) throw new Error('the card did not report the peer close');
  client.destroy();

  // END: the answer that reported the close wiped the session, as RESET-STATE would
  rec.step = 'GET-STATE';
  const st = send(c, cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1));
  expectOk(st.sw, 'GET-STATE');
  if (st.data[0] !== 0x02) throw new Error(`state ${st.data[0]} after an END close (02 AUTHENTICATING, as after RESET-STATE, expected)`);
  return rec.entries;
}

export interface ReplayMismatch {
  readonly index: number;
  readonly step: string;
  readonly command: string;
  readonly expected: string;
  readonly actual: string;
  /** First differing byte of the response. */
  readonly offset: number;
}

/** Sends every recorded command to `card`; returns the first response that differs, or undefined. */
export function replay(card: EmulatedCard, exchanges: readonly TraceEntry[]): ReplayMismatch | undefined {
  for (let i = 0; i < exchanges.length; i++) {
    const e = exchanges[i]!;
    const actual = toHex(card.process(fromHex(e.c)));
    if (actual !== e.r) {
      let offset = 0;
      while (offset * 2 < Math.min(actual.length, e.r.length) && actual.slice(offset * 2, offset * 2 + 2) === e.r.slice(offset * 2, offset * 2 + 2)) offset++;
      return { index: i, step: e.step, command: e.c, expected: e.r, actual, offset };
    }
  }
  return undefined;
}

export function describeMismatch(m: ReplayMismatch): string {
  const cut = (h: string) => (h.length > 160 ? `${h.slice(0, 160)}… (${h.length / 2} bytes)` : h);
  return (
    `APDU #${m.index} (${m.step}) answered differently from the recording, first at response byte ${m.offset}\n` +
    `  command:  ${cut(m.command)}\n  expected: ${cut(m.expected.slice(Math.max(0, m.offset * 2 - 16)))}\n  actual:   ${cut(m.actual.slice(Math.max(0, m.offset * 2 - 16)))}`
  );
}

/** Copies the fixture's sealed state into `dir` and opens it as a deterministic card. */
export function openFixtureCard(fixtureDir: string, trace: TraceFile, dir: string): EmulatedCard {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  copyFileSync(join(fixtureDir, trace.stateDir, 'state.sealed'), join(dir, 'state.sealed'));
  const masterKey = fromHex(readFileSync(join(fixtureDir, trace.masterKeyFile), 'utf8').trim());
  return EmulatedCard.open({ dir, masterKey, random: seededRandom(trace.seed) });
}
