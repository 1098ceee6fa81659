/** Personalisation: keys generated inside, CSR, chains, identities, and no private key ever out. */
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as x509 from '@peculiar/x509';
import { concat, findTlv, parseTlvs } from '../../src/bytes/index.js';
import type { EmulatedCard } from '../../src/card/index.js';
import { deserializeState } from '../../src/card/state.js';
import { SealedStore } from '../../src/card/os/sealed-store.js';
import { OPERATOR_PIN, SELECT, TestCa, USER_PIN, a0, chainData, cmd, csrRequest, newCard, personalise, send, swOf, utf8, verify, xcv } from './helpers.js';
import { ClientPipe, connectClient, driveHandshake, once } from './tls-host.js';

const gen = (card: EmulatedCard, label: string) => send(card, cmd(0xa0, 0x46, 0x01, 0x00, utf8(label), 256));

test('GENERATE-KEY needs the operator PIN; returns a P-256 SPKI; GET-CSR verifies and carries CN and SANs', async () => {
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    assert.equal(swOf(card, verify(USER_PIN)), 0x9000);
    assert.equal(gen(card, 'web').sw, 0x6982);
    assert.equal(swOf(card, verify(OPERATOR_PIN, 1)), 0x9000);
    const g = gen(card, 'web');
    assert.equal(g.sw, 0x9000);
    const pub = new x509.PublicKey(g.data as Uint8Array<ArrayBuffer>);
    assert.equal((pub.algorithm as EcKeyAlgorithm).namedCurve, 'P-256');

    const r = await xcv(card, a0(0x4a, 0, 0, csrRequest('web', 'card.example', ['card.example', '*.card.example'], [Uint8Array.of(10, 0, 0, 1)])));
    assert.equal(r.sw, 0x9000);
    const csr = new x509.Pkcs10CertificateRequest(r.data as Uint8Array<ArrayBuffer>);
    assert.ok(await csr.verify());
    assert.equal(csr.subject, 'CN=card.example');
    assert.deepEqual(new Uint8Array(csr.publicKey.rawData), g.data);
    const san = csr.getExtension('2.5.29.17') as x509.SubjectAlternativeNameExtension | null;
    assert.ok(san);
    assert.deepEqual(
      san.names.items.map((n) => `${n.type}:${n.value}`),
      ['dns:card.example', 'dns:*.card.example', 'ip:10.0.0.1'],
    );
    // no SANs is fine too
    const bare = await xcv(card, a0(0x4a, 0, 0, csrRequest('web', 'only-cn')));
    assert.ok(await new x509.Pkcs10CertificateRequest(bare.data as Uint8Array<ArrayBuffer>).verify());

    // bad requests
    assert.equal((await xcv(card, a0(0x4a, 0, 0, csrRequest('nope', 'x')))).sw, 0x6a88);
    assert.equal((await xcv(card, a0(0x4a, 0, 0, Uint8Array.of(0x80, 0x05, 0x61)))).sw, 0x6a80);
    assert.equal((await xcv(card, a0(0x4a, 0, 0, csrRequest('web', 'x', ['bad name!'])))).sw, 0x6a80);
    assert.equal((await xcv(card, a0(0x4a, 0, 0, csrRequest('web', 'x', [], [Uint8Array.of(1, 2, 3)])))).sw, 0x6a80);
    assert.equal((await xcv(card, a0(0x4a, 0, 0, concat(csrRequest('web', 'x'), Uint8Array.of(0x99, 0))))).sw, 0x6a80);
    assert.equal((await xcv(card, a0(0x4a, 0, 0, Uint8Array.of(0x80, 1, 0x61)))).sw, 0x6a80); // no CN
    assert.equal(gen(card, '').sw, 0x6a80); // no label
    assert.equal(send(card, cmd(0xa0, 0x46, 0x01, 0x00, Uint8Array.of(0x61, 0x0a), 256)).sw, 0x6a80); // control char
  } finally {
    card.close();
    cleanup();
  }
});

test('PUT-CHAIN: a certificate for another key → 6A80, garbage → 6A80, the right chain → 9000 and GET-DATA shows it', async () => {
  const ca = await TestCa.create();
  const { card, cleanup } = newCard();
  try {
    send(card, SELECT);
    send(card, verify(OPERATOR_PIN, 1));
    send(card, verify(USER_PIN));
    const a = gen(card, 'a').data;
    const b = gen(card, 'b').data;
    const certA = await ca.issue(a);
    const caDer = new Uint8Array(ca.cert.rawData);
    assert.equal((await xcv(card, a0(0xda, 0, 0, chainData('b', [certA, caDer]), 0))).sw, 0x6a80);
    assert.equal((await xcv(card, a0(0xda, 0, 0, chainData('a', [Uint8Array.of(0x30, 0x03, 1, 2, 3)]), 0))).sw, 0x6a80);
    assert.equal((await xcv(card, a0(0xda, 0, 0, chainData('a', [caDer, certA]), 0))).sw, 0x6a80); // wrong order
    assert.equal((await xcv(card, a0(0xda, 0, 0, chainData('zz', [certA]), 0))).sw, 0x6a88);
    assert.equal((await xcv(card, a0(0xda, 0, 0, concat(chainData('a', [certA]), Uint8Array.of(0, 0)), 0))).sw, 0x6a80);
    assert.equal(send(card, cmd(0xa0, 0x19, 0, 0, new Uint8Array(0), 1)).data[0], 1); // IDENTITY-NOT-SET
    assert.equal(swOf(card, cmd(0xa0, 0x16, 0x00, 0x80, utf8('a'))), 0x6985); // no chain yet
    assert.equal(swOf(card, cmd(0xa0, 0x16, 0x00, 0x80, utf8('zz'))), 0x6a88);

    const put = await xcv(card, a0(0xda, 0, 0, chainData('a', [certA, caDer]), 0), false, 200); // chained
    assert.equal(put.sw, 0x9000);
    const info = parseTlvs((await xcv(card, a0(0xca, 1, 0, utf8('a')))).data);
    assert.deepEqual(findTlv(info, 0x10), Uint8Array.of(1));
    assert.deepEqual(findTlv(info, 0x11), a);
    assert.deepEqual(info.filter((t) => t.tag === 0x12).map((t) => t.value), [certA, caDer]);
    assert.equal(send(card, cmd(0xa0, 0xca, 1, 0, utf8('zz'), 256)).sw, 0x6a88);
    const ci = parseTlvs((await xcv(card, a0(0xca, 0, 0))).data);
    assert.deepEqual(ci.filter((t) => t.tag === 3).map((t) => new TextDecoder().decode(t.value)), ['a', 'b']);
    assert.equal(send(card, cmd(0xa0, 0x19, 0, 0, new Uint8Array(0), 1)).data[0], 2);
    assert.equal(swOf(card, cmd(0xa0, 0x16, 0x00, 0x80, utf8('a'))), 0x9000);

    // a new key for 'a' drops its chain
    const a2 = gen(card, 'a').data;
    assert.notDeepEqual(a2, a);
    const info2 = parseTlvs((await xcv(card, a0(0xca, 1, 0, utf8('a')))).data);
    assert.equal(info2.filter((t) => t.tag === 0x12).length, 0);
    assert.equal(send(card, cmd(0xa0, 0x19, 0, 0, new Uint8Array(0), 1)).data[0], 1);
    // at most 8 identities
    for (let i = 0; i < 6; i++) assert.equal(gen(card, `id${i}`).sw, 0x9000);
    assert.equal(gen(card, 'one-too-many').sw, 0x6a84);
    assert.equal(gen(card, 'a').sw, 0x9000); // replacing is still fine
  } finally {
    card.close();
    cleanup();
  }
});

/** The test opens the sealed state itself (it knows the master key) to learn the private key. */
function privateKeyBytes(dir: string, masterKey: Uint8Array): Uint8Array[] {
  const store = new SealedStore(dir, masterKey);
  const state = deserializeState(store.read());
  store.close();
  return state.identities.flatMap((i) => {
    const pkcs8 = new Uint8Array(i.privateKey.export({ format: 'der', type: 'pkcs8' }));
    const jwk = i.privateKey.export({ format: 'jwk' });
    return [pkcs8, new Uint8Array(Buffer.from(jwk.d!, 'base64url'))];
  });
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay).indexOf(Buffer.from(needle)) >= 0;
}

test('no response of a personalise + handshake + record run contains the private key', async () => {
  const ca = await TestCa.create();
  const { card, dir, masterKey, cleanup } = newCard();
  try {
    const seen: Uint8Array[] = [];
    const spy = { process: (b: Uint8Array) => {
      const r = card.process(b);
      seen.push(r);
      return r;
    } } as unknown as EmulatedCard;
    const { responses } = await personalise(card, ca);
    seen.push(...responses);
    seen.push(send(card, cmd(0xa0, 0xca, 0, 0, new Uint8Array(0), 256)).data);
    seen.push((await xcv(spy, a0(0xca, 1, 0, utf8('web')))).data);
    send(card, cmd(0xa0, 0x19, 0x10, 0x00));
    const pipe = new ClientPipe();
    const client = connectClient(pipe, ca.pem);
    const okc = once(client, 'secureConnect');
    assert.equal((await driveHandshake(spy, pipe)).outcome, 'success');
    await okc;
    await xcv(spy, a0(0xa6, 0, 0, new Uint8Array(0), 128));
    await xcv(spy, a0(0x86, 0, 0, Uint8Array.of(0x10)));
    client.destroy();
    const secrets = privateKeyBytes(dir, masterKey);
    assert.equal(secrets.length, 2);
    assert.equal(secrets[1]!.length, 32);
    assert.ok(seen.length > 10);
    const all = concat(...seen);
    const [pkcs8, scalar] = secrets as [Uint8Array, Uint8Array];
    assert.ok(!contains(all, pkcs8), 'the PKCS8 key in a response');
    // (PKCS8 also embeds the public key, so only the scalar is searched piecewise)
    for (let o = 0; o + 12 <= scalar.length; o += 4) assert.ok(!contains(all, scalar.subarray(o, o + 12)), 'private scalar bytes in a response');
    // the check can fail: the same search finds the public key, which responses do carry
    const spki = findTlv(parseTlvs((await xcv(card, a0(0xca, 1, 0, utf8('web')))).data), 0x11)!;
    assert.ok(contains(all, spki.subarray(spki.length - 12)));
  } finally {
    card.close();
    cleanup();
  }
});
