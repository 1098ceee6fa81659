// PROCESS-EAP FOLD (P1 `10`, docs/apdu-protocol.md §3): the card's answer with its last records
// (TLS 1.3 NewSessionTicket, TLS 1.2 CCS + Finished) also carries the EAP-Success, so no ACK exchange
// follows. Real emulated card (`setls card init`), TlsTandem, Node's TLS client; every APDU recorded.
// A card that refuses the flag (6A86) still serves: the host retries without it and ACKs as before.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { initCard, openCard } from '../../src/cli/card-setup.js';
import { cardPaths, readPin } from '../../src/cli/card-files.js';
import { CardClient, EapSession, TlsTandem, type SeTlsSocket } from '../../src/host/index.js';
import { InProcessTransport, type CardTransport } from '../../src/transport/index.js';
import { EapTlsFlag, encodeEapTls } from '../../src/eap/index.js';
import { concat } from '../../src/bytes/index.js';
import { parseCommand, parseResponse } from '../../src/apdu/index.js';
import { waitUntil } from '../wait.js';

let root: string;
let cardDir: string;
let ca: string;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'setls-fold-'));
  cardDir = join(root, 'card');
  const init = await initCard({ cardDir });
  ca = readFileSync(init.caCertPath, 'utf8');
});

after(() => rmSync(root, { recursive: true, force: true }));

interface Exchange {
  readonly apdu: Uint8Array;
  readonly answer: Uint8Array;
}

/** The card behind a recording transport; `refuseFold` answers 6A86 to a PROCESS-EAP with FOLD, as a card without it would. */
function recorded(inner: CardTransport, refuseFold: boolean): { transport: CardTransport; log: Exchange[] } {
  const log: Exchange[] = [];
  const transport: CardTransport = {
    extendedLength: inner.extendedLength,
    close: () => inner.close(),
    async transmit(apdu) {
      const answer = refuseFold && apdu[1] === 0x80 && apdu[3] === 0x00 && (apdu[2]! & 0x10) !== 0 ? Uint8Array.of(0x6a, 0x86) : await inner.transmit(apdu);
      log.push({ apdu: apdu.slice(), answer: answer.slice() });
      return answer;
    },
  };
  return { transport, log };
}

/** The EAP packet a PROCESS-EAP command carries. */
const commandData = (apdu: Uint8Array): Uint8Array => parseCommand(apdu).data;
const isProcessEap = (e: Exchange): boolean => e.apdu[1] === 0x80 && e.apdu[3] === 0x00;
const sw = (e: Exchange): number => parseResponse(e.answer).sw;
/** An EAP-TLS ACK Response from the host: 02 id 00 06 0D 00. */
const isAck = (d: Uint8Array): boolean => d.length === 6 && d[0] === 0x02 && d[2] === 0 && d[3] === 6 && d[4] === 0x0d && d[5] === 0;

async function oneConnection(version: 'TLSv1.3' | 'TLSv1.2', refuseFold: boolean): Promise<{ log: Exchange[]; body: string }> {
  const opened = openCard({ cardDir });
  const { transport, log } = recorded(opened.transport, refuseFold);
  const tandem = new TlsTandem({ transport, pin: readPin(cardPaths(cardDir).pinFile), extendedApdu: true });
  await tandem.start();
  const errors: string[] = [];
  tandem.on('sessionError', (e: Error & { code?: string }) => errors.push(`${e.code}: ${e.message}`));
  tandem.on('secureConnection', (s: SeTlsSocket) => s.once('data', () => s.end('pong')));
  const server = tandem.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const c = tls.connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ca, minVersion: version, maxVersion: version });
    await once(c, 'secureConnect').catch((e: Error) => {
      throw new Error(`${e.message}; server: ${errors.join('; ')}; APDUs: ${log.map((x) => `${Buffer.from(x.apdu.subarray(0, 4)).toString('hex')}→${sw(x).toString(16)}`).join(' ')}`);
    });
    c.write('ping');
    let body = '';
    c.on('data', (d: Buffer) => (body += d.toString()));
    await once(c, 'end');
    c.end();
    await waitUntil(() => !tandem.inUse, 'the card session to end');
    assert.deepEqual(errors, []);
    return { log, body };
  } finally {
    await tandem.close();
    opened.card.close();
  }
}

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  test(`FOLD (${version}): the answer to the client's Finished carries the last records and the EAP-Success; the host sends no ACK`, async () => {
    const { log, body } = await oneConnection(version, false);
    assert.equal(body, 'pong');
    const eap = log.filter(isProcessEap);
    const handshake = eap.filter((e) => (e.apdu[2]! & 0x04) !== 0); // INFO: handshake Responses only
    assert.ok(handshake.every((e) => (e.apdu[2]! & 0x10) !== 0), 'every handshake Response asks for FOLD');
    // TLS 1.3: ClientHello, Finished; TLS 1.2: ClientHello, ClientKeyExchange, CCS + Finished
    assert.equal(handshake.length, version === 'TLSv1.3' ? 2 : 3, 'one exchange per client flight: nothing else');
    assert.ok(!eap.some((e) => isAck(commandData(e.apdu))), 'no ACK Response at all (extended APDUs, nothing fragmented)');
    const last = handshake.at(-1)!;
    assert.equal(sw(last), 0x9000, 'not 9001: nothing is left to acknowledge');
    const data = last.answer.subarray(0, -2);
    assert.equal(data[0], 0x01, 'the EAP-Request with the last records comes first');
    const reqLen = (data[2]! << 8) | data[3]!;
    const success = data.subarray(reqLen, reqLen + 4);
    assert.deepEqual([...success], [0x03, (data[1]! + 1) & 0xff, 0x00, 0x04], 'then the EAP-Success, Identifier + 1');
    assert.ok(data.length > reqLen + 4, 'then the session info TLV (INFO)');
    // the first DECRYPT echoes the EAP-Success Identifier (the card refuses anything else with 7000)
    const firstDecrypt = eap[eap.indexOf(last) + 1]!;
    assert.equal(commandData(firstDecrypt.apdu)[1], success[1]);
    assert.equal(sw(firstDecrypt), 0x9000);
  });
}

test('FOLD refused (6A86, a card without it): the host sends the Response again without FOLD, ACKs the last records (9001) and serves', async () => {
  const { log, body } = await oneConnection('TLSv1.3', true);
  assert.equal(body, 'pong');
  const eap = log.filter(isProcessEap);
  const refused = eap.filter((e) => sw(e) === 0x6a86);
  assert.equal(refused.length, 1, 'refused once, never asked again');
  const after = eap.slice(eap.indexOf(refused[0]!) + 1);
  assert.ok(after.every((e) => (e.apdu[2]! & 0x10) === 0));
  const done = after.findIndex((e) => sw(e) === 0x9001);
  assert.ok(done >= 0, 'the card answered the Finished with 9001');
  assert.ok(isAck(commandData(after[done + 1]!.apdu)), 'the host ACKed the last records');
  assert.equal(after[done + 1]!.answer[0], 0x03, 'EAP-Success after the ACK');
  // only FOLD was refused: the DECRYPTs still ask for END
  const decrypts = after.slice(done + 2);
  assert.ok(decrypts.length > 0 && decrypts.every((e) => (e.apdu[2]! & 0x08) !== 0), 'END on every DECRYPT');
});

test('the host takes a folded answer only when it asked for FOLD and only with the EAP-Success of Identifier + 1', async () => {
  const hello = Uint8Array.of(22, 3, 1, 0, 4, 1, 0, 0, 0);
  const ticket = Uint8Array.of(23, 3, 3, 0, 2, 0xab, 0xcd);
  const cases = [
    { fold: true, successId: 0x12, ok: true }, // the card's Request is 0x11: its EAP-Success is 0x12
    { fold: false, successId: 0x12, ok: false }, // not asked
    { fold: true, successId: 0x13, ok: false }, // not Identifier + 1
  ];
  for (const c of cases) {
    const answer = concat(encodeEapTls({ code: 1, id: 0x11, flags: EapTlsFlag.length, data: ticket }), Uint8Array.of(3, c.successId, 0, 4), Uint8Array.of(0x90, 0x00));
    const s = new EapSession(new CardClient(new InProcessTransport(() => answer)), { foldSuccess: c.fold, initialId: 0x10 });
    if (c.ok) {
      const st = await s.handshake([hello]);
      assert.equal(st.done, true);
      assert.deepEqual([...st.toClient], [...ticket]);
      assert.equal(s.identifier, 0x12, 'the next Response echoes the EAP-Success');
    } else {
      await assert.rejects(s.handshake([hello]), { code: 'ERR_HOST_EAP_PROTOCOL' }, JSON.stringify(c));
    }
  }
});

