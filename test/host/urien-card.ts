/**
 * A scripted card that follows the APDU rules of Urien's real TLS-SE applet (purien/TLS-SE
 * src/tls_se.java, commit a2ad601) with toy cryptography, for tests of the host driver:
 *
 *   - RECV `00 D8`: P2 bit0 restarts the 512-byte receive buffer (RXSIZE); overflow → 6D02; on the
 *     last fragment the buffer must be exactly one TLS record (`len+5 == received`) → else 6D02,
 *     except encrypt once open; no data = RESET.
 *   - send(): output ≤ 240 bytes (MAXRXSIZE) goes out as the data of the APDU with its status word;
 *     longer output → a bare `9FF0`, then SEND `00 C0` blocks, each Le exactly min(left, 240) (else
 *     6Cxx), `9Fxx` while more is left, the final status word after the last block.
 *   - handshake (tls()): ClientHello → ServerHello with `9F1C`; the next SEND (Le 1C) builds
 *     EncryptedExtensions (28 bytes) with `9F3A`; the next (Le 3A) Finished (58 bytes) with 9000.
 *     A SEND whose Le differs from what the record needs → 6Cxx first (fsyn). Then a client CCS
 *     record (14 03 03 00 01 01) → 9000, and the client Finished (a 58-byte 0x17 record) → 9001.
 *   - open: decrypt (P1 01) → `inner plaintext ‖ type`, 9000; encrypt (P1 02, `plaintext ‖ type`)
 *     → the record; a record that would not fit the buffer (5 + input + 16 > 512) → 6F00 (the
 *     Java array bound).
 * Toy record protection: body = (inner plaintext XOR 0x5A) ‖ 16 zero "tag" bytes.
 * imports src/apdu and src/transport (test helper).
 */
import { encodeResponse, parseCommand } from '../../src/apdu/index.js';
import { concat } from '../../src/bytes/index.js';
import { InProcessTransport } from '../../src/transport/index.js';

export const URIEN_SH = ((): Uint8Array => {
  const r = new Uint8Array(95).fill(0x51);
  r.set([0x16, 3, 3, 0, 90, 0x02]);
  return r;
})();
export const URIEN_EE = ((): Uint8Array => {
  const r = new Uint8Array(0x1c).fill(0x52);
  r.set([0x17, 3, 3, 0, 0x17]);
  return r;
})();
export const URIEN_FIN = ((): Uint8Array => {
  const r = new Uint8Array(0x3a).fill(0x53);
  r.set([0x17, 3, 3, 0, 0x35]);
  return r;
})();

/** A toy-protected record of `inner` (plaintext ‖ type): 17 03 03 len ‖ inner^5A ‖ 16 × 00. */
export function toyRecord(inner: Uint8Array): Uint8Array {
  const body = concat(
    inner.map((b) => b ^ 0x5a),
    new Uint8Array(16),
  );
  return concat(Uint8Array.of(0x17, 3, 3, body.length >> 8, body.length & 0xff), body);
}

/** The inner plaintext of a toy record. */
export function toyOpen(record: Uint8Array): Uint8Array {
  return record.subarray(5, record.length - 16).map((b) => b ^ 0x5a);
}

type State = 'ready' | 'extension' | 'sfinished' | 'ccs' | 'cfinished' | 'open';

export interface UrienCard {
  readonly transport: InProcessTransport;
  /** `ins p1 p2 lc|le` of every APDU, and the SW answered: "d8 0 3 6 → 9000". */
  readonly log: string[];
}

export function urienCard(): UrienCard {
  const RXSIZE = 512;
  const MAXRXSIZE = 240;
  const rx = new Uint8Array(RXSIZE);
  let rxptr = 0;
  let state: State = 'ready';
  let mode = 0;
  // transmit side (Java VS[TXLEN], VS[TXSW], and the output still in RX)
  let tx: Uint8Array = new Uint8Array(0);
  let txoff = 0;
  let txlen = 0;
  let txsw = 0x9000;
  let waiting = false; // VS[STATE_RECV] == S_RECV_WAITING
  let requestLen = 0; // VS[RECV_REQUEST_LEN]
  const log: string[] = [];

  class Sw extends Error {
    constructor(
      readonly sw: number,
      readonly data: Uint8Array = new Uint8Array(0),
    ) {
      super(`SW ${sw.toString(16)}`);
    }
  }
  const resetTls = (): void => {
    state = 'ready';
    rxptr = 0;
    txlen = 0;
    waiting = false;
  };

  /** Java send(): answer `out` (data ≤ 240 with sw, or a bare 9FF0 / 6Cxx). Always throws. */
  const send = (out: Uint8Array, sw: number): never => {
    const len = Math.min(out.length, MAXRXSIZE);
    const fsyn = waiting && len !== requestLen;
    if (sw >> 8 === 0x9f) waiting = true;
    else waiting = false;
    if (fsyn) {
      tx = out;
      txoff = 0;
      txlen = out.length;
      txsw = sw;
      throw new Sw(0x6c00 | len);
    }
    if (out.length <= MAXRXSIZE) {
      txlen = 0;
      txsw = sw;
      throw new Sw(sw, out);
    }
    tx = out;
    txoff = 0;
    txlen = out.length;
    txsw = sw;
    throw new Sw(0x9f00 | MAXRXSIZE);
  };

  const tls = (): never => {
    for (;;) {
      switch (state) {
        case 'ready': {
          if (rx[0] !== 0x16 || rx[5] !== 0x01) {
            resetTls();
            throw new Sw(0x6d16);
          }
          state = 'extension';
          return send(URIEN_SH, 0x9f00 | URIEN_EE.length);
        }
        case 'extension':
          state = 'sfinished';
          return send(URIEN_EE, 0x9f00 | URIEN_FIN.length);
        case 'sfinished':
          state = 'ccs';
          return send(URIEN_FIN, 0x9000);
        case 'ccs':
          if (rx[0] === 0x17) {
            state = 'cfinished';
            continue;
          }
          if (rxptr !== 6 || rx[0] !== 0x14 || rx[5] !== 0x01) {
            resetTls();
            throw new Sw(0x6d16);
          }
          state = 'cfinished';
          return send(new Uint8Array(0), 0x9000);
        case 'cfinished':
          if (rx[0] !== 0x17 || rx[3] !== 0 || rx[4] !== 0x35) {
            resetTls();
            throw new Sw(0x6d16);
          }
          state = 'open';
          return send(new Uint8Array(0), 0x9001);
        case 'open': {
          if (mode === 1) {
            const len = (rx[3]! << 8) | rx[4]!;
            if (len < 16) {
              resetTls();
              throw new Sw(0x6d16);
            }
            return send(toyOpen(rx.slice(0, 5 + len)), 0x9000);
          }
          if (mode === 2) {
            if (5 + rxptr + 16 > RXSIZE) throw new Sw(0x6f00); // ArrayIndexOutOfBounds in aesccm_encrypt
            return send(toyRecord(rx.slice(0, rxptr)), 0x9000);
          }
          resetTls();
          throw new Sw(0x6d16);
        }
      }
    }
  };

  const recvCmd = (p1: number, p2: number, data: Uint8Array): never => {
    if (data.length === 0) {
      resetTls();
      throw new Sw(0x9000);
    }
    if (p2 & 1) rxptr = 0;
    if (rxptr + data.length > RXSIZE) throw new Sw(0x6d02);
    rx.set(data, rxptr);
    rxptr += data.length;
    if (!(p2 & 2)) throw new Sw(0x9000);
    if (p1 === 0xff) return send(rx.slice(0, rxptr), 0x9000);
    mode = p1;
    if (!(mode === 2 && state === 'open')) {
      if (rxptr < 5) throw new Sw(0x6d02);
      const len = (rx[3]! << 8) | rx[4]!;
      if (len + 5 !== rxptr) throw new Sw(0x6d02);
    }
    return tls();
  };

  /** Java recv() (INS C0). */
  const getResponse = (p3: number): never => {
    if (txlen === 0) {
      if (waiting) {
        requestLen = p3;
        return tls();
      }
      throw new Sw(0x9000);
    }
    const le = p3 === 0 ? 256 : p3;
    const expect = txlen <= MAXRXSIZE ? txlen : MAXRXSIZE;
    if (le !== expect) throw new Sw(0x6c00 | expect);
    const d = tx.slice(txoff, txoff + le);
    txoff += le;
    txlen -= le;
    if (txlen === 0) throw new Sw(txsw, d);
    throw new Sw(0x9f00 | Math.min(txlen, MAXRXSIZE), d);
  };

  const process = (apdu: Uint8Array): Uint8Array => {
    const c = parseCommand(apdu);
    const p3 = apdu.length > 4 ? apdu[4]! : 0;
    let res: Sw;
    try {
      if (c.ins === 0xa4 || c.ins === 0x20) throw new Sw(0x9000);
      if (c.ins === 0xd8) recvCmd(c.p1, c.p2, c.data);
      if (c.ins === 0xc0) getResponse(p3);
      throw new Sw(0x6d00);
    } catch (e) {
      if (!(e instanceof Sw)) throw e;
      res = e;
    }
    log.push(`${c.ins.toString(16)} ${c.p1} ${c.p2} ${p3} → ${res.sw.toString(16)}${res.data.length ? ` +${res.data.length}` : ''}`);
    return encodeResponse(res.data, res.sw);
  };
  return { transport: new InProcessTransport(process), log };
}
