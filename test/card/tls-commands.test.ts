/**
 * PUT-IDENTITY-POLICY, PUT-TRUST-ANCHOR and PUT-PSK (docs/apdu-protocol.md §2.3): PINs, TLV
 * validation, limits, persistence across reopen, the identity and card-info views, loading an
 * older (version 2) state, and no PSK key or ticket key in any response.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findTlv, parseTlvs, toHex, type Tlv } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { SealedStore } from '../../src/card/os/sealed-store.js';
import { STATE_VERSION, deserializeState } from '../../src/card/state.js';
import { stateV3Doc } from './state-v3.js';
import { OPERATOR_PIN, SELECT, TestCa, USER_PIN, a0, cmd, newCard, personalise, send, swOf, utf8, verify, xcv } from './helpers.js';
import { handshakeWith, sessionInfo } from './tls-host.js';
import { labelTlv, putIdentityPolicy, putPsk, putTrustAnchor } from './tls-features.js';

async function identityView(card: EmulatedCard, label = 'web'): Promise<Tlv[]> {
  const r = await xcv(card, a0(0xca, 0x01, 0x00, utf8(label), 65536), true);
  assert.equal(r.sw, 0x9000);
  return parseTlvs(r.data);
}

async function cardInfo(card: EmulatedCard): Promise<{ raw: Uint8Array; items: Tlv[] }> {
  const r = await xcv(card, a0(0xca, 0x00, 0x00, new Uint8Array(0), 65536), true);
  assert.equal(r.sw, 0x9000);
  return { raw: r.data, items: parseTlvs(r.data) };
}

const all = (items: Tlv[], tag: number): string[] => items.filter((t) => t.tag === tag).map((t) => toHex(t.value));

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay).indexOf(Buffer.from(needle)) >= 0;
}

test('PUT-IDENTITY-POLICY: operator PIN (6982), bad TLV 6A80, unknown label 6A88; absent tags keep their value; identity view 40/41/42', async () => {
  const ca = await TestCa.create();
  const { card, cleanup } = newCard();
  try {
    await personalise(card, ca);
    // the user PIN alone is not enough
    card.reset();
    send(card, SELECT);
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    assert.equal(swOf(card, putIdentityPolicy([labelTlv('web'), { tag: 0x40, value: Uint8Array.of(2) }])), 0x6982);
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
    let view = await identityView(card);
    assert.equal(toHex(findTlv(view, 0x40)!), '00', 'default: no client auth');
    assert.equal(toHex(findTlv(view, 0x41)!), '00', 'default: no export');
    assert.deepEqual(all(view, 0x42), []);
    assert.deepEqual(all(view, 0x43), []);

    const bad: [Tlv[], string][] = [
      [[{ tag: 0x40, value: Uint8Array.of(1) }], 'no label'],
      [[labelTlv('web'), { tag: 0x40, value: Uint8Array.of(3) }], 'client auth 03'],
      [[labelTlv('web'), { tag: 0x40, value: Uint8Array.of(1, 1) }], 'client auth of 2 bytes'],
      [[labelTlv('web'), { tag: 0x40, value: Uint8Array.of(1) }, { tag: 0x40, value: Uint8Array.of(1) }], 'client auth twice'],
      [[labelTlv('web'), { tag: 0x41, value: Uint8Array.of(2) }], 'export 02'],
      [[labelTlv('web'), labelTlv('web')], 'label twice'],
      [[labelTlv('web'), { tag: 0x42, value: utf8('a\nb') }], 'control character in an exporter label'],
      [[labelTlv('web'), { tag: 0x42, value: utf8('x'.repeat(250)) }], 'exporter label of 250 bytes'],
      [[labelTlv('web'), { tag: 0x42, value: utf8('a') }, { tag: 0x42, value: utf8('a') }], 'exporter label twice'],
      [[labelTlv('web'), ...Array.from({ length: 17 }, (_, i) => ({ tag: 0x42, value: utf8(`label-${i}`) }))], '17 exporter labels'],
      [[labelTlv('web'), { tag: 0x43, value: Uint8Array.of(1) }], 'unknown tag 43'],
      [[labelTlv('')], 'empty label'],
    ];
    for (const [items, why] of bad) {
      assert.equal(send(card, putIdentityPolicy(items)).sw.toString(16), '6a80', why);
    }
    assert.equal(swOf(card, cmd(0xa0, 0xde, 0x00, 0x00, Uint8Array.of(0x80, 0x05, 0x77))), 0x6a80, 'broken TLV');
    assert.equal(swOf(card, cmd(0xa0, 0xde, 0x00, 0x01, Uint8Array.of(0x80, 0x03, 0x77, 0x65, 0x62))), 0x6a86, 'P2 01');
    assert.equal(swOf(card, putIdentityPolicy([labelTlv('nobody'), { tag: 0x40, value: Uint8Array.of(1) }])), 0x6a88);
    view = await identityView(card);
    assert.equal(toHex(findTlv(view, 0x40)!), '00', 'nothing changed');

    assert.equal(
      swOf(card, putIdentityPolicy([labelTlv('web'), { tag: 0x40, value: Uint8Array.of(2) }, { tag: 0x42, value: utf8('EXPORTER-a') }, { tag: 0x42, value: utf8('EXPORTER-b') }])),
      0x9000,
    );
    assert.equal(swOf(card, putIdentityPolicy([labelTlv('web'), { tag: 0x41, value: Uint8Array.of(1) }])), 0x9000);
    view = await identityView(card);
    assert.equal(toHex(findTlv(view, 0x40)!), '02');
    assert.equal(toHex(findTlv(view, 0x41)!), '01');
    assert.deepEqual(all(view, 0x42), [toHex(utf8('EXPORTER-a')), toHex(utf8('EXPORTER-b'))], 'absent 42 kept the list');
    // one empty 42 clears the list
    assert.equal(swOf(card, putIdentityPolicy([labelTlv('web'), { tag: 0x42, value: new Uint8Array(0) }])), 0x9000);
    view = await identityView(card);
    assert.deepEqual(all(view, 0x42), []);
    assert.equal(toHex(findTlv(view, 0x40)!), '02', 'client auth kept');
  } finally {
    card.close();
    cleanup();
  }
});

test('PUT-TRUST-ANCHOR: CA certificates only (6A80), at most 8 (6A84), chained short APDUs, duplicates ignored, clear; persisted', async () => {
  const ca = await TestCa.create();
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    const { leaf } = await personalise(card, ca);
    card.reset();
    send(card, SELECT);
    send(card, verify(USER_PIN));
    const caDer = new Uint8Array(ca.cert.rawData);
    assert.equal((await putTrustAnchor(card, 'web', caDer)).sw, 0x6982, 'operator PIN needed');
    send(card, verify(OPERATOR_PIN, 1));
    assert.equal((await putTrustAnchor(card, 'web', leaf)).sw, 0x6a80, 'a leaf (no basicConstraints cA) is no anchor');
    assert.equal((await putTrustAnchor(card, 'web', Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01))).sw, 0x6a80, 'not a certificate');
    assert.equal((await putTrustAnchor(card, 'web', Uint8Array.of(...caDer, 0x00))).sw, 0x6a80, 'trailing byte');
    assert.equal((await putTrustAnchor(card, 'nobody', caDer)).sw, 0x6a88);
    assert.equal(swOf(card, cmd(0xa0, 0xd2, 0x00, 0x02, Uint8Array.of(3, 0x77, 0x65, 0x62))), 0x6a86, 'P2 02');
    assert.ok(caDer.length > 255, 'the CA certificate needs a command chain with short APDUs');
    assert.equal((await putTrustAnchor(card, 'web', caDer)).sw, 0x9000);
    assert.equal((await putTrustAnchor(card, 'web', caDer)).sw, 0x9000, 'the same anchor again: no-op');
    assert.deepEqual(all(await identityView(card), 0x43), [toHex(caDer)]);
    const more: Uint8Array[] = [];
    for (let i = 0; i < 7; i++) more.push(new Uint8Array((await TestCa.create()).cert.rawData));
    for (const c of more) assert.equal((await putTrustAnchor(card, 'web', c, true)).sw, 0x9000);
    assert.equal(all(await identityView(card), 0x43).length, 8);
    assert.equal((await putTrustAnchor(card, 'web', new Uint8Array((await TestCa.create()).cert.rawData))).sw, 0x6a84, 'a 9th anchor');
    card.close();

    const again = EmulatedCard.open({ dir, masterKey });
    try {
      send(again, SELECT);
      assert.deepEqual(all(await identityView(again), 0x43), [caDer, ...more].map((c) => toHex(c)), 'persisted, in order');
      send(again, verify(OPERATOR_PIN, 1));
      assert.equal((await putTrustAnchor(again, 'web', undefined)).sw, 0x9000, 'clear');
      assert.deepEqual(all(await identityView(again), 0x43), []);
      assert.equal(swOf(again, cmd(0xa0, 0xd2, 0x00, 0x01, Uint8Array.of(3, 0x77, 0x65, 0x62, 0x00))), 0x6a80, 'clear takes the label only');
    } finally {
      again.close();
    }
  } finally {
    cleanup();
  }
});

test('PUT-PSK: operator PIN, TLV checks (6A80), 16 at most (6A84), delete (6A88 when unknown); card info 0A lists identities, never keys; persisted', async () => {
  const { card, dir, masterKey, cleanup } = newCard();
  const key = (i: number) => Uint8Array.from({ length: 32 }, (_, k) => (i * 31 + k * 7 + 1) & 0xff);
  try {
    send(card, SELECT);
    send(card, verify(USER_PIN));
    assert.equal(swOf(card, putPsk(utf8('dev-0'), key(0))), 0x6982);
    send(card, verify(OPERATOR_PIN, 1));
    const bad: [Uint8Array, string][] = [
      [putPsk(utf8('dev-0'), new Uint8Array(15)), 'key of 15 bytes'],
      [putPsk(utf8('dev-0'), new Uint8Array(65)), 'key of 65 bytes'],
      [putPsk(new Uint8Array(129), key(0)), 'identity of 129 bytes'],
      [putPsk(new Uint8Array(0), key(0)), 'empty identity'],
      [putPsk(utf8('dev-0'), key(0), 2), 'hash 02'],
      [cmd(0xa0, 0xd4, 0x00, 0x00, Uint8Array.of(0x51, 0x10, ...new Uint8Array(16))), 'no identity'],
      [cmd(0xa0, 0xd4, 0x00, 0x00, Uint8Array.of(0x50, 0x01, 0x41)), 'no key'],
      [cmd(0xa0, 0xd4, 0x00, 0x01, Uint8Array.of(0x50, 0x01, 0x41, 0x51, 0x10, ...new Uint8Array(16))), 'delete with a key'],
      [cmd(0xa0, 0xd4, 0x00, 0x00, Uint8Array.of(0x50, 0x01, 0x41, 0x53, 0x00)), 'unknown tag'],
      [cmd(0xa0, 0xd4, 0x00, 0x00, Uint8Array.of(0x50, 0x05, 0x41)), 'broken TLV'],
    ];
    for (const [apdu, why] of bad) assert.equal(send(card, apdu).sw.toString(16), '6a80', why);
    assert.equal(swOf(card, cmd(0xa0, 0xd4, 0x00, 0x02, Uint8Array.of(0x50, 0x01, 0x41))), 0x6a86);
    assert.equal(swOf(card, cmd(0xa0, 0xd4, 0x01, 0x00, Uint8Array.of(0x50, 0x01, 0x41))), 0x6a86, 'PUT-PSK is not chained');
    for (let i = 0; i < 16; i++) assert.equal(swOf(card, putPsk(utf8(`dev-${i}`), key(i), i % 2)), 0x9000, `PSK ${i}`);
    assert.equal(swOf(card, putPsk(utf8('dev-16'), key(16))), 0x6a84, 'a 17th PSK');
    assert.equal(swOf(card, putPsk(utf8('dev-3'), key(99))), 0x9000, 'replacing one is fine');
    assert.equal(swOf(card, putPsk(utf8('dev-15'))), 0x9000, 'delete');
    assert.equal(swOf(card, putPsk(utf8('dev-15'))), 0x6a88, 'delete again');
    const info = await cardInfo(card);
    assert.deepEqual(
      all(info.items, 0x0a),
      Array.from({ length: 15 }, (_, i) => toHex(utf8(`dev-${i}`))),
    );
    for (let i = 0; i < 17; i++) assert.ok(!contains(info.raw, key(i)), `card info holds PSK key ${i}`);
    assert.ok(!contains(info.raw, key(99)));
    card.close();
    const again = EmulatedCard.open({ dir, masterKey });
    try {
      send(again, SELECT);
      assert.equal(all((await cardInfo(again)).items, 0x0a).length, 15, 'persisted');
    } finally {
      again.close();
    }
  } finally {
    cleanup();
  }
});

test('no response carries a PSK key or the ticket key (card info, identity, session info after a ticket-issuing handshake)', async () => {
  const ca = await TestCa.create();
  const { card, dir, masterKey, cleanup } = newCard();
  const pskKey = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 ^ i);
  try {
    await personalise(card, ca);
    assert.equal(swOf(card, putPsk(utf8('sensor'), pskKey)), 0x9000);
    assert.equal(swOf(card, putIdentityPolicy([labelTlv('web'), { tag: 0x41, value: Uint8Array.of(1) }, { tag: 0x42, value: utf8('EXPORTER-x') }])), 0x9000);
    const s = await handshakeWith(card, ca.pem);
    assert.equal(s.hs.outcome, 'success');
    assert.ok(s.hs.sawDoneSw, 'a NewSessionTicket went out with 9001');
    s.client.destroy();
    // the ticket key now exists: read it from the sealed state (the test knows the master key)
    const store = new SealedStore(dir, masterKey);
    const plain = store.read();
    store.close();
    assert.equal(plain[0], STATE_VERSION);
    const ticketKey = deserializeState(plain).ticketKey!.key;
    assert.equal(ticketKey.length, 32);
    const responses: Uint8Array[] = [
      (await cardInfo(card)).raw,
      (await xcv(card, a0(0xca, 0x01, 0x00, utf8('web'), 65536), true)).data,
      (await xcv(card, a0(0x86, 0x00, 0x00, Uint8Array.of(0x10)))).data,
      send(card, SELECT).data,
    ];
    for (const r of responses) {
      assert.ok(r.length > 0);
      assert.ok(!contains(r, pskKey), 'PSK key in a response');
      assert.ok(!contains(r, ticketKey), 'ticket key in a response');
      assert.ok(!contains(r, ticketKey.subarray(0, 8)), 'part of the ticket key in a response');
    }
  } finally {
    card.close();
    cleanup();
  }
});

test('a version 2 sealed state (before identity policies, PSKs and tickets) still loads, with the defaults', async () => {
  const ca = await TestCa.create();
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    await personalise(card, ca);
    card.close();
    const store = new SealedStore(dir, masterKey);
    const doc = stateV3Doc(deserializeState(store.read()));
    doc.version = 2;
    delete doc.psks;
    delete doc.ticketKey;
    for (const i of doc.identities) for (const k of ['clientAuth', 'exportAllowed', 'exporterLabels', 'trustAnchors']) delete i[k];
    for (const k of ['cipherSuites12', 'versions', 'ticketLifetime', 'sessionIdCache']) delete doc.policy[k];
    store.write(new TextEncoder().encode(JSON.stringify(doc)));
    store.close();
    const again = EmulatedCard.open({ dir, masterKey });
    try {
      send(again, SELECT);
      const view = await identityView(again);
      assert.equal(toHex(findTlv(view, 0x40)!), '00');
      assert.equal(toHex(findTlv(view, 0x41)!), '00');
      const policy = parseTlvs(findTlv((await cardInfo(again)).items, 0x09)!);
      assert.equal(toHex(findTlv(policy, 0x35)!), 'c02bc02ccca9c02fc030cca8');
      assert.equal(toHex(findTlv(policy, 0x36)!), '03040303');
      assert.equal(toHex(findTlv(policy, 0x37)!), '00001c20');
      assert.equal(toHex(findTlv(policy, 0x38)!), '01');
      send(again, verify(USER_PIN));
      const s = await handshakeWith(again, ca.pem);
      assert.equal(s.hs.outcome, 'success');
      assert.equal(toHex((await sessionInfo(again)).get(0x2a)!), '00', 'a full handshake');
      s.client.destroy();
    } finally {
      again.close();
    }
  } finally {
    cleanup();
  }
});
