/**
 * The card state's byte form: format v4 (binary TLV) round trips field by field, JSON v1–v3 still
 * load (migration, incl. the captured card-trace fixture), corrupt or truncated v4 is ERR_CARD_STATE,
 * and no secret becomes a JS string while serializing or deserializing v4.
 */
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { encodeTlvs, fromHex, toHex } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { makePinRecord } from '../../src/card/pins.js';
import { DEFAULT_POLICY, applyPolicyTlv } from '../../src/card/policy.js';
import { STATE_VERSION, StateTag, cloneState, deserializeState, serializeState, type CardState } from '../../src/card/state.js';
import { SealedStore } from '../../src/card/os/sealed-store.js';
import { SELECT, TestCa, pad, send, tempDir, verify } from './helpers.js';
import { serializeStateV3, stateV3Doc } from './state-v3.js';
import { blankRecord } from '../../src/card/applets/isd/index.js';
import { staticKeys } from '../../src/gp/keys.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'card-trace');
const FIXTURE_KEY = fromHex(readFileSync(join(FIXTURE, 'card.key'), 'utf8').trim());

const bytes = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (seed * 31 + i * 7) & 0xff);
const spkiOf = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ format: 'der', type: 'spki' }));
const pkcs8Of = (k: KeyObject): Uint8Array => new Uint8Array(k.export({ format: 'der', type: 'pkcs8' }));

let full: CardState | undefined;
/** A state with every field populated and away from its default. */
async function fullState(): Promise<CardState> {
  if (full) return full;
  const ca = await TestCa.create();
  const caDer = new Uint8Array(ca.cert.rawData);
  const other = await TestCa.create('CN=another CA');
  const otherDer = new Uint8Array(other.cert.rawData);
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  const ec2 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ecLeaf = await ca.issue(spkiOf(ec.publicKey), 'web', ['web.example', '*.api.example', 'localhost']);
  const rsaLeaf = await ca.issue(spkiOf(rsa.publicKey), 'legacy', ['legacy.example']);
  const policy = applyPolicyTlv(
    encodeTlvs([
      { tag: 0x30, value: fromHex('13021301') },
      { tag: 0x31, value: fromHex('0017001d') },
      { tag: 0x32, value: Uint8Array.of(1) },
      { tag: 0x33, value: Uint8Array.of(2, 0x68, 0x32, 8, ...new TextEncoder().encode('http/1.1')) },
      { tag: 0x34, value: fromHex('000003e8') },
      { tag: 0x35, value: fromHex('c02cc02b') },
      { tag: 0x36, value: fromHex('0304') },
      { tag: 0x37, value: fromHex('00000e10') },
      { tag: 0x38, value: Uint8Array.of(0) },
      { tag: 0x39, value: Uint8Array.of(1, 0) },
    ]),
    DEFAULT_POLICY,
  );
  const user = makePinRecord(pad('1234'), bytes(16, 1), 3);
  user.tries = 1;
  const operator = makePinRecord(pad('87654321'), bytes(16, 2), 3);
  const puk = makePinRecord(pad('11223344'), bytes(16, 3), 10);
  puk.tries = 0;
  full = {
    serial: fromHex('0102030405060708'),
    pins: { user, operator, puk },
    lastTime: 0xfffffff0,
    identities: [
      {
        label: 'web',
        keyType: 'p256',
        privateKey: ec.privateKey,
        spki: spkiOf(ec.publicKey),
        chain: [ecLeaf, caDer],
        hostNames: ['web.example', '*.api.example', 'localhost'],
        clientAuth: 'required',
        exportAllowed: true,
        exporterLabels: ['EXPORTER-a', 'EXPORTER-ünïcödé'],
        trustAnchors: [caDer, otherDer],
      },
      {
        label: 'légacy rsa',
        keyType: 'rsa2048',
        privateKey: rsa.privateKey,
        spki: spkiOf(rsa.publicKey),
        chain: [rsaLeaf],
        hostNames: ['legacy.example'],
        clientAuth: 'optional',
        exportAllowed: false,
        exporterLabels: [],
        trustAnchors: [otherDer],
      },
      {
        label: 'bare',
        keyType: 'p256',
        privateKey: ec2.privateKey,
        spki: spkiOf(ec2.publicKey),
        chain: [],
        hostNames: [],
        clientAuth: 'none',
        exportAllowed: false,
        exporterLabels: [],
        trustAnchors: [],
      },
    ],
    policy,
    psks: [
      { identity: new TextEncoder().encode('sensor-1'), key: bytes(16, 4), hash: 'sha256' },
      { identity: bytes(128, 5), key: bytes(64, 6), hash: 'sha384' },
    ],
    ticketKey: { id: bytes(4, 7), key: bytes(32, 8) },
    isd: undefined,
  };
  return full;
}

/** Field-by-field equality (private keys by their PKCS#8). */
function assertSameState(a: CardState, b: CardState): void {
  assert.deepEqual(a.serial, b.serial, 'serial');
  assert.equal(a.lastTime, b.lastTime, 'lastTime');
  for (const p of ['user', 'operator', 'puk'] as const) {
    assert.deepEqual(a.pins[p].salt, b.pins[p].salt, `${p} salt`);
    assert.deepEqual(a.pins[p].hash, b.pins[p].hash, `${p} hash`);
    assert.equal(a.pins[p].tries, b.pins[p].tries, `${p} tries`);
    assert.equal(a.pins[p].max, b.pins[p].max, `${p} max`);
    assert.deepEqual(a.pins[p].pending && toHex(a.pins[p].pending), b.pins[p].pending && toHex(b.pins[p].pending), `${p} pending attempt`);
  }
  assert.deepEqual(a.policy, b.policy, 'policy');
  assert.equal(a.identities.length, b.identities.length, 'identities');
  a.identities.forEach((x, n) => {
    const y = b.identities[n]!;
    const { privateKey: kx, ...rx } = x;
    const { privateKey: ky, ...ry } = y;
    assert.deepEqual(pkcs8Of(kx), pkcs8Of(ky), `identity ${n} private key`);
    assert.deepEqual(
      { ...rx, chain: rx.chain.map((c) => toHex(c)), trustAnchors: rx.trustAnchors.map((c) => toHex(c)), spki: toHex(rx.spki) },
      { ...ry, chain: ry.chain.map((c) => toHex(c)), trustAnchors: ry.trustAnchors.map((c) => toHex(c)), spki: toHex(ry.spki) },
      `identity ${n}`,
    );
  });
  assert.deepEqual(
    a.psks.map((p) => [toHex(p.identity), toHex(p.key), p.hash]),
    b.psks.map((p) => [toHex(p.identity), toHex(p.key), p.hash]),
    'psks',
  );
  assert.deepEqual(a.ticketKey && [toHex(a.ticketKey.id), toHex(a.ticketKey.key)], b.ticketKey && [toHex(b.ticketKey.id), toHex(b.ticketKey.key)], 'ticket key');
}

const isStateError = (e: unknown): boolean => (e as { code?: string }).code === 'ERR_CARD_STATE';

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay).indexOf(Buffer.from(needle)) >= 0;
}

/** Every secret of `s` as bytes: PKCS#8 and raw private values, PIN hashes, PSK keys, ticket key. */
function secretsOf(s: CardState): { name: string; value: Uint8Array }[] {
  const out: { name: string; value: Uint8Array }[] = [];
  for (const i of s.identities) {
    out.push({ name: `${i.label} pkcs8`, value: pkcs8Of(i.privateKey) });
    const jwk = i.privateKey.export({ format: 'jwk' });
    out.push({ name: `${i.label} d`, value: new Uint8Array(Buffer.from(jwk.d!, 'base64url')) });
    if (jwk.p) out.push({ name: `${i.label} p`, value: new Uint8Array(Buffer.from(jwk.p, 'base64url')) });
  }
  for (const p of ['user', 'operator', 'puk'] as const) out.push({ name: `${p} hash`, value: s.pins[p].hash });
  s.psks.forEach((p, n) => out.push({ name: `psk ${n} key`, value: p.key }));
  if (s.ticketKey) out.push({ name: 'ticket key', value: s.ticketKey.key });
  return out;
}

test('v4: a fully populated state round-trips field by field; the bytes are canonical and share no memory with the result', async () => {
  const s = await fullState();
  const plain = serializeState(s);
  assert.equal(plain[0], STATE_VERSION);
  assert.equal(plain[0], 0x04);
  assert.equal(plain[1], StateTag.state);
  const back = deserializeState(plain);
  const again = serializeState(back);
  plain.fill(0); // what the caller does: the decoded state must not be a view of it
  assertSameState(back, s);
  assert.deepEqual(serializeState(back), again, 'deterministic');
  assertSameState(deserializeState(again), s);
  // an empty card (no identities, PSKs or ticket key) too
  const empty: CardState = { ...cloneState(s), identities: [], psks: [], ticketKey: undefined, policy: DEFAULT_POLICY, lastTime: 0 };
  assertSameState(deserializeState(serializeState(empty)), empty);
});

test('v4 layout: version 04, one E0 TLV, fields in order, PIN record = tries ‖ max ‖ salt ‖ hash', async () => {
  const s = await fullState();
  const plain = serializeState(s);
  const bodyLen = plain[2] === 0x82 ? (plain[3]! << 8) | plain[4]! : -1;
  assert.equal(bodyLen, plain.length - 5);
  const body = plain.subarray(5);
  assert.equal(toHex(body.subarray(0, 10)), '02080102030405060708');
  assert.equal(toHex(body.subarray(10, 16)), '0704fffffff0');
  assert.equal(toHex(body.subarray(16, 20)), '04320103', 'user PIN: 1 try of 3');
  assert.deepEqual(body.subarray(20, 36), s.pins.user.salt);
  assert.deepEqual(body.subarray(36, 68), s.pins.user.hash);
  // the ticket key closes the state
  assert.equal(toHex(plain.subarray(plain.length - 38)), '0d24' + toHex(s.ticketKey!.id) + toHex(s.ticketKey!.key));
});

test('v4 pending PIN attempts (0E, after the ticket key): round-trip, absent in older v4 states, malformed ones refused', async () => {
  const s = await fullState();
  const withPending: CardState = cloneState(s);
  withPending.pins.user.pending = bytes(32, 11);
  withPending.pins.puk.pending = bytes(32, 12);
  const plain = serializeState(withPending);
  // ticket key, then one 0E per pending attempt in PIN order (00 user, 02 PUK)
  const tail = toHex(plain.subarray(plain.length - 38 - 2 * 35));
  assert.equal(tail, '0d24' + toHex(s.ticketKey!.id) + toHex(s.ticketKey!.key) + '0e2100' + toHex(bytes(32, 11)) + '0e2102' + toHex(bytes(32, 12)));
  const back = deserializeState(plain);
  assertSameState(back, withPending);
  assert.equal(back.pins.operator.pending, undefined);
  // a state written before the field existed (no 0E) is the same state with nothing pending
  assertSameState(deserializeState(serializeState(s)), s);
  const expect = (b: Uint8Array, re: RegExp, what: string): void => {
    assert.throws(() => deserializeState(b), (e: Error & { code?: string }) => e.code === 'ERR_CARD_STATE' && re.test(e.message), what);
  };
  const body = bodyOf(serializeState(s));
  expect(withBody(Uint8Array.of(...body, 0x0e, 0x21, 0x03, ...bytes(32, 1))), /unknown PIN 3/, 'PIN ref 03');
  expect(withBody(Uint8Array.of(...body, 0x0e, 0x21, 0x00, ...bytes(32, 1), 0x0e, 0x21, 0x00, ...bytes(32, 2))), /two pending attempts for the user PIN/, 'two for one PIN');
  expect(withBody(Uint8Array.of(...body, 0x0e, 0x20, 0x00, ...bytes(31, 1))), /pending PIN attempt .*32 bytes/, 'short tag');
});

test('v3 JSON (and v1, v2) still load, with the defaults for what older versions lack', async () => {
  const s = await fullState();
  assertSameState(deserializeState(serializeStateV3(s)), s);
  // version 2: no identity policies, PSKs, ticket key, TLS 1.2 policy fields
  const v2 = stateV3Doc(s);
  v2.version = 2;
  delete v2.psks;
  delete v2.ticketKey;
  for (const i of v2.identities) for (const k of ['clientAuth', 'exportAllowed', 'exporterLabels', 'trustAnchors']) delete i[k];
  for (const k of ['cipherSuites12', 'versions', 'ticketLifetime', 'sessionIdCache', 'pskModes']) delete v2.policy[k];
  const s2 = deserializeState(new TextEncoder().encode(JSON.stringify(v2)));
  assert.equal(s2.psks.length, 0);
  assert.equal(s2.ticketKey, undefined);
  assert.deepEqual(s2.policy.versions, DEFAULT_POLICY.versions);
  assert.equal(s2.identities[0]!.clientAuth, 'none');
  // version 1: no policy either
  const v1 = { ...v2, version: 1 } as Record<string, unknown>;
  delete v1.policy;
  v1.identities = (v2.identities as Record<string, unknown>[]).filter((i) => i.keyType === 'p256');
  const s1 = deserializeState(new TextEncoder().encode(JSON.stringify(v1)));
  assert.deepEqual(s1.policy, DEFAULT_POLICY);
  // and each migrates: v4 of the loaded state round-trips
  for (const old of [s2, s1]) assertSameState(deserializeState(serializeState(old)), old);
  // JSON of an unknown version or format is refused
  const v9 = { ...stateV3Doc(s), version: 9 };
  assert.throws(() => deserializeState(new TextEncoder().encode(JSON.stringify(v9))), isStateError);
  assert.throws(() => deserializeState(new TextEncoder().encode('{"format":')), isStateError);
});

test('the captured card-trace fixture (a v3 JSON state) opens, and the next write stores v4 that opens again', () => {
  const store = new SealedStore(join(FIXTURE, 'card'), FIXTURE_KEY);
  const plain = store.read();
  store.close();
  assert.equal(plain[0], 0x7b, 'the fixture is JSON ({)');
  const v3 = deserializeState(plain);
  assertSameState(deserializeState(serializeState(v3)), v3);

  const { dir, cleanup } = tempDir();
  try {
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(FIXTURE, 'card', 'state.sealed'), join(dir, 'state.sealed'));
    const card = EmulatedCard.open({ dir, masterKey: FIXTURE_KEY });
    try {
      send(card, SELECT);
      assert.equal(send(card, verify('9999')).sw & 0xfff0, 0x63c0, 'a wrong PIN (persisted counter)');
    } finally {
      card.close();
    }
    const s2 = new SealedStore(dir, FIXTURE_KEY);
    const after = s2.read();
    s2.close();
    assert.equal(after[0], STATE_VERSION, 'written as v4');
    const migrated = deserializeState(after);
    assert.equal(migrated.pins.user.tries, v3.pins.user.tries - 1);
    assert.equal(migrated.pins.user.pending?.length, 32, 'the charged wrong PIN is the pending attempt');
    assertSameState(migrated, { ...cloneState(v3), pins: { ...v3.pins, user: { ...v3.pins.user, tries: v3.pins.user.tries - 1, pending: migrated.pins.user.pending } } });
    const reopened = EmulatedCard.open({ dir, masterKey: FIXTURE_KEY });
    try {
      assert.equal(send(reopened, SELECT).sw, 0x9000);
    } finally {
      reopened.close();
    }
  } finally {
    cleanup();
  }
});

/** Replaces the E0 body of a v4 state with `body` (recomputing the outer length). */
function withBody(body: Uint8Array): Uint8Array {
  const n = body.length;
  const len = n < 0x80 ? [n] : n <= 0xff ? [0x81, n] : n <= 0xffff ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Uint8Array.from([STATE_VERSION, StateTag.state, ...len, ...body]);
}

/** The E0 body of a v4 state. */
function bodyOf(plain: Uint8Array): Uint8Array {
  const l = plain[2]!;
  return plain.subarray(l < 0x80 ? 3 : 3 + (l & 0x7f));
}

test('v4 strict parsing: each malformation is ERR_CARD_STATE with a message naming it', async () => {
  const s = await fullState();
  const small: CardState = { ...cloneState(s), identities: [s.identities[2]!] };
  const plain = serializeState(small);
  const body = bodyOf(plain);
  const expect = (b: Uint8Array, re: RegExp, what: string): void => {
    assert.throws(() => deserializeState(b), (e: Error & { code?: string }) => e.code === 'ERR_CARD_STATE' && re.test(e.message), what);
  };
  expect(new Uint8Array(0), /empty/, 'empty');
  expect(Uint8Array.of(0x05, ...plain.subarray(1)), /unknown state format/, 'version 5');
  expect(Uint8Array.of(...plain, 0), /trailing|unknown|truncated/, 'a trailing byte');
  expect(Uint8Array.of(...plain, 0xe0, 0), /state TLV.*more than 1/, 'a second state TLV');
  expect(withBody(Uint8Array.of(...body, 0x77, 0x01, 0x00)), /unknown tag 77/, 'an unknown tag');
  expect(withBody(Uint8Array.of(0x02, 0x08, ...small.serial, ...body)), /serial.*more than 1/, 'serial twice');
  expect(withBody(body.subarray(10)), /serial .*missing/, 'no serial');
  // lastTime before serial: out of order
  expect(withBody(Uint8Array.of(...body.subarray(10, 16), ...body.subarray(0, 10), ...body.subarray(16))), /out of order tag 02|serial.*missing/, 'out of order');
  // non-minimal length: 81 08 for the 8-byte serial
  expect(withBody(Uint8Array.of(0x02, 0x81, 0x08, ...body.subarray(2))), /shortest form/, 'non-minimal length');
  expect(withBody(Uint8Array.of(0x02, 0x84, 0, 0, 0, 8, ...body.subarray(2))), /length form/, '4-byte length');
  expect(withBody(Uint8Array.of(0x02, 0x07, ...body.subarray(2, 9), ...body.subarray(10))), /serial.*7 bytes/, 'short serial');
  // PIN record with tries > max
  const b2 = Uint8Array.from(body);
  b2[18] = 4; // user PIN: tries 4, max 3
  expect(withBody(b2), /user PIN: tries 4/, 'tries > max');
  // too many identities (8 labelled and the security domain's 8 slots)
  const many: CardState = { ...cloneState(s), identities: Array.from({ length: 17 }, (_, n) => ({ ...s.identities[2]!, label: `id${n}` })) };
  expect(serializeState(many), /identity .*more than 16/, 'seventeen identities');
  // duplicate labels, duplicate PSK identities
  expect(serializeState({ ...cloneState(s), identities: [s.identities[2]!, s.identities[2]!] }), /duplicate identity labels/, 'duplicate labels');
  expect(serializeState({ ...cloneState(s), psks: [s.psks[0]!, s.psks[0]!] }), /duplicate PSK/, 'duplicate PSKs');
  // a PSK key below 16 bytes, an unknown PSK hash code
  expect(serializeState({ ...cloneState(s), psks: [{ ...s.psks[0]!, key: bytes(15, 9) }] }), /PSK 0: key .*15 bytes/, 'short PSK key');
  const psk = serializeState({ ...cloneState(s), identities: [], psks: [s.psks[0]!] });
  psk[psk.length - 1 - 38]! = 7; // the hash byte just before the ticket key TLV
  expect(psk, /PSK 0 hash/, 'PSK hash 07');
  // an identity whose key does not match its SPKI, or is of the wrong type
  expect(serializeState({ ...cloneState(s), identities: [{ ...s.identities[2]!, spki: s.identities[0]!.spki }] }), /does not match/, 'SPKI mismatch');
  expect(serializeState({ ...cloneState(s), identities: [{ ...s.identities[2]!, keyType: 'rsa2048' }] }), /not of type rsa2048/, 'key type');
  // a bad policy
  const pol = Uint8Array.from(body);
  const at = Buffer.from(pol).indexOf(Buffer.from([0x32, 0x01, 0x01])); // unknown SNI: reject
  assert.ok(at > 0);
  pol[at + 2] = 9;
  expect(withBody(pol), /policy: .*unknown-SNI/, 'policy');
});

test('v4: every truncation, and random bit flips, give ERR_CARD_STATE or a valid state, never another error', async () => {
  const s = await fullState();
  const plain = serializeState(s);
  for (let n = 0; n < plain.length; n++) {
    assert.throws(() => deserializeState(plain.subarray(0, n)), isStateError, `truncated to ${n} bytes`);
  }
  fc.assert(
    fc.property(fc.integer({ min: 0, max: plain.length * 8 - 1 }), fc.integer({ min: 0, max: 3 }), (bit, extra) => {
      const b = Uint8Array.from(plain);
      b[bit >> 3]! ^= 1 << (bit & 7);
      // a few more flips near it (lengths and tags are clustered)
      for (let k = 1; k <= extra; k++) b[Math.min(b.length - 1, (bit >> 3) + k * 3)]! ^= 0x80;
      try {
        const out = deserializeState(b);
        // a flip in a byte without structure (a serial, a certificate body, a counter) may still be a state
        serializeState(out);
      } catch (e) {
        if (!isStateError(e)) throw e;
      }
    }),
    { numRuns: 400 },
  );
  // flips in the structural header always fail
  for (let bit = 0; bit < 5 * 8; bit++) {
    const b = Uint8Array.from(plain);
    b[bit >> 3]! ^= 1 << (bit & 7);
    assert.throws(() => deserializeState(b), isStateError, `header bit ${bit}`);
  }
});

/** Wraps methods that turn bytes into strings and records their inputs while `fn` runs. */
function recordStringConversions(fn: () => void): { what: string; input: Uint8Array | undefined }[] {
  const calls: { what: string; input: Uint8Array | undefined }[] = [];
  const asBytes = (v: unknown): Uint8Array | undefined => (ArrayBuffer.isView(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice() : undefined);
  const origStringify = JSON.stringify;
  const origParse = JSON.parse;
  const origDecode = TextDecoder.prototype.decode;
  const origToString = Buffer.prototype.toString;
  const origFromCharCode = String.fromCharCode;
  const origBtoa = globalThis.btoa;
  JSON.stringify = function (this: unknown, ...a: Parameters<typeof JSON.stringify>) {
    calls.push({ what: 'JSON.stringify', input: undefined });
    return origStringify.apply(JSON, a);
  } as typeof JSON.stringify;
  JSON.parse = function (this: unknown, ...a: Parameters<typeof JSON.parse>) {
    calls.push({ what: 'JSON.parse', input: undefined });
    return origParse.apply(JSON, a);
  } as typeof JSON.parse;
  TextDecoder.prototype.decode = function (this: TextDecoder, input?: Parameters<TextDecoder['decode']>[0], opts?: Parameters<TextDecoder['decode']>[1]) {
    calls.push({ what: 'TextDecoder.decode', input: asBytes(input) });
    return origDecode.call(this, input, opts);
  };
  Buffer.prototype.toString = function (this: Buffer, ...a: unknown[]) {
    calls.push({ what: `Buffer.toString(${String(a[0])})`, input: asBytes(this) });
    return (origToString as (...x: unknown[]) => string).apply(this, a);
  } as typeof Buffer.prototype.toString;
  String.fromCharCode = function (...codes: number[]) {
    calls.push({ what: 'String.fromCharCode', input: Uint8Array.from(codes.map((c) => c & 0xff)) });
    return origFromCharCode(...codes);
  };
  globalThis.btoa = function (s: string) {
    calls.push({ what: 'btoa', input: undefined });
    return origBtoa(s);
  };
  try {
    fn();
  } finally {
    JSON.stringify = origStringify;
    JSON.parse = origParse;
    TextDecoder.prototype.decode = origDecode;
    Buffer.prototype.toString = origToString;
    String.fromCharCode = origFromCharCode;
    globalThis.btoa = origBtoa;
  }
  return calls;
}

test('v4 keeps secrets out of JS strings: serialize makes no string from bytes; deserialize decodes only labels', async () => {
  const s = await fullState();
  const secrets = secretsOf(s);
  let plain: Uint8Array = new Uint8Array(0);
  const enc = recordStringConversions(() => {
    plain = serializeState(s);
  });
  assert.deepEqual(enc.map((c) => c.what), [], 'serializeState turned bytes into a string');
  // the secrets are in the output as bytes, never as base64 or hex text
  const text = Buffer.from(plain).toString('latin1');
  for (const { name, value } of secrets) {
    if (name.endsWith(' d') || name.endsWith(' p')) continue; // inside the PKCS#8
    assert.ok(contains(plain, value), `${name} is not in the output as bytes`);
    for (const enc2 of ['base64', 'hex', 'base64url'] as const) {
      assert.ok(!text.includes(Buffer.from(value).toString(enc2).slice(0, 24)), `${name} is in the output as ${enc2}`);
    }
  }
  let back: CardState | undefined;
  const dec = recordStringConversions(() => {
    back = deserializeState(plain);
  });
  assertSameState(back!, s);
  assert.ok(!dec.some((c) => c.what.startsWith('JSON')), 'deserializeState used JSON');
  assert.ok(dec.some((c) => c.what === 'TextDecoder.decode'), 'the labels are decoded (the spy works)');
  for (const c of dec) {
    if (!c.input) continue;
    for (const { name, value } of secrets) {
      const probe = value.subarray(0, Math.min(16, value.length));
      assert.ok(!contains(c.input, probe), `deserializeState passed ${name} to ${c.what}`);
    }
  }
  // sanity check of the spy: it sees the old JSON writer and reader turn secrets into strings
  let v3: Uint8Array = new Uint8Array(0);
  const legacyWrite = recordStringConversions(() => {
    v3 = serializeStateV3(s);
  });
  assert.ok(legacyWrite.some((c) => c.what === 'JSON.stringify') && legacyWrite.some((c) => c.what.startsWith('Buffer.toString(base64)')));
  const legacy = recordStringConversions(() => deserializeState(v3));
  assert.ok(legacy.some((c) => c.what === 'JSON.parse'));
});

test('serializeState does not mutate or wipe the live state (only its own PKCS#8 exports)', async () => {
  const s = await fullState();
  const before = secretsOf(s).map((x) => toHex(x.value));
  const plain = serializeState(s);
  plain.fill(0);
  assert.deepEqual(secretsOf(s).map((x) => toHex(x.value)), before);
  assert.ok(!secretsOf(s).some((x) => x.value.every((b) => b === 0)));
});

test('the security domain record is the state TLV E3, last: round trip; a state without it (every card made before) has no security domain; a new card has one in OP_READY', async () => {
  const s = await fullState();
  const rec = blankRecord();
  rec.lifecycle = 0x0f;
  rec.uid = fromHex('5e715000000000000000000000000001');
  rec.keySets = [staticKeys(0x30, new Uint8Array(16).fill(1), new Uint8Array(16).fill(2), new Uint8Array(16).fill(3))];
  rec.sequenceCounter = 42;
  rec.revokedSerials = [fromHex('0badcafe')];
  const withIsd: CardState = { ...cloneState(s), isd: rec };
  const plain = serializeState(withIsd);
  const back = deserializeState(plain);
  assert.deepEqual(back.isd, rec);
  assertSameState(back, withIsd);
  // E3 is the last TLV of the state: the bytes before it are a state without a security domain
  const without = serializeState({ ...cloneState(s), isd: undefined });
  assert.equal(toHex(bodyOf(plain)).startsWith(toHex(bodyOf(without))), true);
  assert.equal(bodyOf(plain)[bodyOf(without).length], StateTag.isd);
  assert.equal(deserializeState(without).isd, undefined);
  // a malformed record is ERR_CARD_STATE naming the security domain
  const broken = withBody(Uint8Array.of(...bodyOf(without), StateTag.isd, 0x03, 0x01, 0x01, 0x02));
  assert.throws(() => deserializeState(broken), (e: Error & { code?: string }) => e.code === 'ERR_CARD_STATE' && /security domain/.test(e.message));
  // a new card: OP_READY, nothing else
  const { dir, cleanup } = tempDir();
  try {
    const key = new Uint8Array(32).fill(9);
    EmulatedCard.create({ dir, masterKey: key, userPin: '1234', operatorPin: '87654321', puk: '11223344' }).close();
    const st = deserializeState(new SealedStore(dir, key).read());
    assert.deepEqual(st.isd, blankRecord());
  } finally {
    cleanup();
  }
});
