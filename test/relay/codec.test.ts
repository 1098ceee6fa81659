/**
 * setls-remote-admin/1 codec: round trips of every body and header value (fast-check over random
 * APDU lists, UIDs, AIDs, tokens, host ids), and refusals of what is not the protocol, each with its
 * stable code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  RelayLimits,
  decodeErrorBody,
  decodePollBody,
  decodeResultBody,
  decodeScriptBody,
  encodeErrorBody,
  encodePollBody,
  encodeResultBody,
  encodeScriptBody,
  formatAid,
  formatBearer,
  formatFrom,
  formatNextUri,
  formatSeId,
  formatSeList,
  parseAid,
  parseBearer,
  parseFrom,
  parseNextUri,
  parseResume,
  parseRetryAfter,
  parseScriptStatus,
  parseSeId,
  parseSeList,
  SCRIPT_STATUSES,
  ISD_AID,
} from '../../src/relay/index.js';

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const capdu = bytes(4, 300);
const rapdu = bytes(2, 300);
const uid = bytes(4, 32);
const hostId = fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/);
const token = fc.stringMatching(/^[A-Za-z0-9_-]{43}$/);

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code ?? `(no code: ${(e as Error).message})`;
  }
  return '(no error)';
}

test('script, answer and poll bodies round-trip (random APDU lists)', () => {
  fc.assert(
    fc.property(fc.array(capdu, { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 300 }), (capdus, delayS) => {
      const text = encodeScriptBody({ delayS, capdus });
      const back = decodeScriptBody(text);
      assert.equal(back.delayS, delayS);
      assert.deepEqual(back.capdus, capdus);
      // The SERAM shape, exactly.
      const j = JSON.parse(text);
      assert.deepEqual(Object.keys(j), ['delay', 'ramCommands']);
      assert.equal(j.ramCommands[0].ramCommandType, 'seRamCommand');
      assert.ok(j.ramCommands[0].listOfCAPDU.every((h: string) => /^[0-9A-F]*$/.test(h)));
    }),
  );
  fc.assert(
    fc.property(fc.array(rapdu, { maxLength: 40 }), (rapdus) => {
      assert.deepEqual(decodeResultBody(encodeResultBody(rapdus)), rapdus);
    }),
  );
  fc.assert(
    fc.property(fc.uniqueArray(uid, { maxLength: 10, selector: (u) => Buffer.from(u).toString('hex') }), fc.nat(), (uids, uptimeS) => {
      const hb = { agent: 'setls-agent/1', uptimeS, cards: uids.map((u, i) => ({ uid: u, state: i % 2 ? ('absent' as const) : ('ready' as const) })) };
      assert.deepEqual(decodePollBody(encodePollBody(hb)), hb);
    }),
  );
});

test('hex is read in either case; lower-case answers decode', () => {
  assert.deepEqual(decodeResultBody('{"listOfRAPDU":["6a82","ABCD9000"]}'), [Uint8Array.of(0x6a, 0x82), Uint8Array.of(0xab, 0xcd, 0x90, 0x00)]);
});

test('header values round-trip (SE list, targeted SE, AID, Next-URI, host id, bearer)', () => {
  fc.assert(
    fc.property(fc.uniqueArray(uid, { maxLength: RelayLimits.maxCards, selector: (u) => Buffer.from(u).toString('hex') }), (uids) => {
      assert.deepEqual(parseSeList(formatSeList(uids)), uids);
    }),
  );
  fc.assert(fc.property(uid, (u) => assert.deepEqual(parseSeId(formatSeId(u)), u)));
  fc.assert(fc.property(bytes(5, 16), (a) => assert.deepEqual(parseAid(formatAid(a)), a)));
  fc.assert(fc.property(token, (t) => assert.equal(parseNextUri(formatNextUri(t)), t)));
  fc.assert(fc.property(hostId, (h) => assert.equal(parseFrom(formatFrom(h)), h)));
  fc.assert(fc.property(fc.stringMatching(/^[\x21-\x7e]{1,100}$/), (t) => assert.equal(parseBearer(formatBearer(t)), t)));
  for (const s of SCRIPT_STATUSES) assert.equal(parseScriptStatus(s), s);
  assert.equal(formatAid(ISD_AID), '//aid/A000000151/000000');
  assert.equal(formatAid(Uint8Array.of(1, 2, 3, 4, 5)), '//aid/0102030405/');
  assert.equal(parseSeList('').length, 0);
  assert.equal(parseResume(undefined), false);
  assert.equal(parseResume('true'), true);
  assert.equal(parseRetryAfter('0'), 0);
  assert.equal(parseRetryAfter('3600'), 3600);
  assert.equal(parseBearer('bearer abc'), 'abc');
});

test('refused header values: each with ERR_RELAY_HEADER (or UNAUTHORIZED for Authorization)', () => {
  const H = 'ERR_RELAY_HEADER';
  const cases: [string, () => unknown][] = [
    ['from without prefix', () => parseFrom('host/abc')],
    ['from with a space', () => parseFrom('//host/a b')],
    ['from too long', () => parseFrom('//host/' + 'a'.repeat(65))],
    ['from empty id', () => parseFrom('//host/')],
    ['SE id odd hex', () => parseSeId('//se-id/CUD/ABC')],
    ['SE id not hex', () => parseSeId('//se-id/CUD/GG112233')],
    ['SE id too short', () => parseSeId('//se-id/CUD/112233')],
    ['SE id too long', () => parseSeId('//se-id/CUD/' + '00'.repeat(33))],
    ['SE id other scheme', () => parseSeId('//se-id/ICCID/89014103211118510720')],
    ['SE list duplicate', () => parseSeList('//se-id/CUD/00112233;//se-id/cud/00112233'.replace('cud', 'CUD'))],
    ['SE list duplicate (case)', () => parseSeList('//se-id/CUD/AABBCCDD;//se-id/CUD/aabbccdd')],
    ['SE list trailing ;', () => parseSeList('//se-id/CUD/00112233;')],
    ['SE list too many', () => parseSeList(Array.from({ length: 65 }, (_, i) => `//se-id/CUD/${i.toString(16).padStart(8, '0')}`).join(';'))],
    ['AID without PIX slash', () => parseAid('//aid/A000000151')],
    ['AID short RID', () => parseAid('//aid/A0000001/51000000')],
    ['AID PIX odd', () => parseAid('//aid/A000000151/000')],
    ['AID PIX too long', () => parseAid('//aid/A000000151/' + '00'.repeat(12))],
    ['AID extra slash', () => parseAid('//aid/A000000151/00/00')],
    ['Next-URI absolute', () => parseNextUri('https://evil.example/admin/v1/s/' + 'a'.repeat(43))],
    ['Next-URI protocol-relative', () => parseNextUri('//evil.example/admin/v1/s/' + 'a'.repeat(43))],
    ['Next-URI other path', () => parseNextUri('/admin/v1/poll')],
    ['Next-URI traversal', () => parseNextUri('/admin/v1/s/../../x' + 'a'.repeat(36))],
    ['Next-URI short token', () => parseNextUri('/admin/v1/s/abc')],
    ['Next-URI query', () => parseNextUri('/admin/v1/s/' + 'a'.repeat(42) + '?')],
    ['status unknown', () => parseScriptStatus('done')],
    ['status case', () => parseScriptStatus('OK')],
    ['resume yes', () => parseResume('yes')],
    ['resume TRUE', () => parseResume('TRUE')],
    ['retry-after date', () => parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT')],
    ['retry-after negative', () => parseRetryAfter('-1')],
    ['retry-after too big', () => parseRetryAfter('3601')],
  ];
  for (const [what, fn] of cases) assert.equal(code(fn), H, what);
  assert.equal(code(() => parseBearer('Basic dXNlcjpwYXNz')), 'ERR_RELAY_UNAUTHORIZED');
  assert.equal(code(() => parseBearer('Bearer')), 'ERR_RELAY_UNAUTHORIZED');
  assert.equal(code(() => parseBearer('Bearer a b')), 'ERR_RELAY_UNAUTHORIZED');
});

test('refused bodies: each with ERR_RELAY_BODY (or TOO_LARGE)', () => {
  const B = 'ERR_RELAY_BODY';
  const script = (o: unknown): string => JSON.stringify(o);
  const ok = { delay: 0, ramCommands: [{ ramCommandType: 'seRamCommand', listOfCAPDU: ['80CA9F7F00'] }] };
  assert.deepEqual(decodeScriptBody(script(ok)).capdus, [Uint8Array.of(0x80, 0xca, 0x9f, 0x7f, 0x00)]);
  const bad: [string, string][] = [
    ['not JSON', '{'],
    ['an array', '[]'],
    ['unknown member', script({ ...ok, extra: 1 })],
    ['missing delay', script({ ramCommands: ok.ramCommands })],
    ['delay negative', script({ ...ok, delay: -1 })],
    ['delay fraction', script({ ...ok, delay: 0.5 })],
    ['delay too long', script({ ...ok, delay: 301 })],
    ['delay as string', script({ ...ok, delay: '0' })],
    ['two commands', script({ ...ok, ramCommands: [ok.ramCommands[0], ok.ramCommands[0]] })],
    ['no command', script({ ...ok, ramCommands: [] })],
    ['other command type', script({ ...ok, ramCommands: [{ ramCommandType: 'ramStopCommand', listOfCAPDU: ['00A40400'] }] })],
    ['empty list', script({ ...ok, ramCommands: [{ ramCommandType: 'seRamCommand', listOfCAPDU: [] }] })],
    ['odd hex', script({ ...ok, ramCommands: [{ ramCommandType: 'seRamCommand', listOfCAPDU: ['80CA9F7F0'] }] })],
    ['not hex', script({ ...ok, ramCommands: [{ ramCommandType: 'seRamCommand', listOfCAPDU: ['80CA9F7FZZ'] }] })],
    ['spaces', script({ ...ok, ramCommands: [{ ramCommandType: 'seRamCommand', listOfCAPDU: ['80 CA 9F 7F'] }] })],
    ['C-APDU of 3 bytes', script({ ...ok, ramCommands: [{ ramCommandType: 'seRamCommand', listOfCAPDU: ['80CA9F'] }] })],
    ['a number', script({ ...ok, ramCommands: [{ ramCommandType: 'seRamCommand', listOfCAPDU: [1234] }] })],
    ['256 C-APDUs', script({ ...ok, ramCommands: [{ ramCommandType: 'seRamCommand', listOfCAPDU: Array(256).fill('00B00000') }] })],
    ['C-APDU too long', script({ ...ok, ramCommands: [{ ramCommandType: 'seRamCommand', listOfCAPDU: ['00'.repeat(RelayLimits.maxCommandApdu + 1)] }] })],
  ];
  for (const [what, text] of bad) assert.equal(code(() => decodeScriptBody(text)), B, what);
  assert.equal(code(() => decodeScriptBody(script({ ...ok, ramCommands: [{ ramCommandType: 'seRamCommand', listOfCAPDU: Array(20).fill('00'.repeat(30_000)) }] }))), 'ERR_RELAY_TOO_LARGE');
  assert.equal(code(() => decodeScriptBody(' '.repeat(RelayLimits.maxBody + 1))), 'ERR_RELAY_TOO_LARGE');
  // answers
  for (const [what, text] of [
    ['R-APDU of 1 byte', '{"listOfRAPDU":["90"]}'],
    ['unknown member', '{"listOfRAPDU":[],"x":1}'],
    ['not a list', '{"listOfRAPDU":"9000"}'],
    ['R-APDU too long', JSON.stringify({ listOfRAPDU: ['00'.repeat(RelayLimits.maxResponseApdu + 1)] })],
  ] as const) {
    assert.equal(code(() => decodeResultBody(text)), B, what);
  }
  // polls
  const hb = { heartbeat: { agent: 'a', uptimeS: 0, cards: [] as unknown[] } };
  for (const [what, o] of [
    ['agent empty', { heartbeat: { ...hb.heartbeat, agent: '' } }],
    ['agent control char', { heartbeat: { ...hb.heartbeat, agent: 'a\n' } }],
    ['uptime negative', { heartbeat: { ...hb.heartbeat, uptimeS: -1 } }],
    ['card state', { heartbeat: { ...hb.heartbeat, cards: [{ uid: '00112233', state: 'gone' }] } }],
    ['card twice', { heartbeat: { ...hb.heartbeat, cards: [{ uid: '00112233', state: 'ready' }, { uid: '00112233', state: 'absent' }] } }],
    ['card extra member', { heartbeat: { ...hb.heartbeat, cards: [{ uid: '00112233', state: 'ready', pin: '1234' }] } }],
    ['heartbeat missing', {}],
    ['prototype key', JSON.parse('{"heartbeat":{"agent":"a","uptimeS":0,"cards":[],"__proto__":{}}}')],
  ] as const) {
    assert.equal(code(() => decodePollBody(JSON.stringify(o))), B, what);
  }
  assert.equal(code(() => decodePollBody(' '.repeat(RelayLimits.maxPollBody + 1))), 'ERR_RELAY_TOO_LARGE');
});

test('hex lists: fast-check — any string that is not even-length hex of the right size is refused', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 20 }), (s) => {
      const valid = /^(?:[0-9A-Fa-f]{2})*$/.test(s) && s.length >= 4;
      const text = JSON.stringify({ listOfRAPDU: [s] });
      if (valid) assert.equal(decodeResultBody(text)[0]!.length, s.length / 2);
      else assert.equal(code(() => decodeResultBody(text)), 'ERR_RELAY_BODY');
    }),
  );
});

test('error bodies: round trip; anything else reads as no error', () => {
  assert.deepEqual(decodeErrorBody(encodeErrorBody({ code: 'ERR_RELAY_GONE', message: 'used' })), { code: 'ERR_RELAY_GONE', message: 'used' });
  assert.equal(decodeErrorBody('<html>'), undefined);
  assert.equal(decodeErrorBody('{"error":{"code":"nope","message":"x"}}'), undefined);
});

test('encoders refuse what decoders would refuse (no invalid message is ever sent)', () => {
  assert.equal(code(() => encodeScriptBody({ delayS: 0, capdus: [] })), 'ERR_RELAY_ARGUMENT');
  assert.equal(code(() => encodeScriptBody({ delayS: 0, capdus: [Uint8Array.of(0, 1, 2)] })), 'ERR_RELAY_ARGUMENT');
  assert.equal(code(() => encodeScriptBody({ delayS: 301, capdus: [Uint8Array.of(0, 1, 2, 3)] })), 'ERR_RELAY_ARGUMENT');
  assert.equal(code(() => encodeResultBody([Uint8Array.of(0x90)])), 'ERR_RELAY_ARGUMENT');
  assert.equal(code(() => formatSeList([Uint8Array.of(1, 2, 3, 4), Uint8Array.of(1, 2, 3, 4)])), 'ERR_RELAY_HEADER');
  assert.equal(code(() => formatFrom('a/b')), 'ERR_RELAY_HEADER');
  assert.equal(code(() => formatNextUri('x')), 'ERR_RELAY_HEADER');
  assert.equal(code(() => formatBearer('a b')), 'ERR_RELAY_HEADER');
});
