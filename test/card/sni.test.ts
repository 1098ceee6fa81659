/** Several identities selected by SNI (leaf SAN DNS names, exact or one-label wildcard), and the unknown-SNI policy. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findTlv, parseTlvs } from '../../src/bytes/index.js';
import { bestHostMatch, matchHostName, normaliseHostName } from '../../src/card/names.js';
import type { EmulatedCard } from '../../src/card/index.js';
import { TestCa, a0, cmd, newCard, personalise, send, utf8, xcv } from './helpers.js';
import { handshakeWith, sessionInfo } from './tls-host.js';

test('host name matching: case-insensitive, a wildcard matches exactly one label, exact beats wildcard', () => {
  assert.equal(matchHostName('a.example.com', 'A.Example.COM'), 'exact');
  assert.equal(matchHostName('a.example.com', 'a.example.com.'), 'exact');
  assert.equal(matchHostName('*.example.com', 'x.example.com'), 'wildcard');
  assert.equal(matchHostName('*.example.com', 'X.EXAMPLE.com'), 'wildcard');
  assert.equal(matchHostName('*.example.com', 'example.com'), undefined);
  assert.equal(matchHostName('*.example.com', 'a.b.example.com'), undefined);
  assert.equal(matchHostName('*.example.com', '.example.com'), undefined);
  assert.equal(matchHostName('a.example.com', 'b.example.com'), undefined);
  assert.equal(normaliseHostName('WWW.Example.com'), 'www.example.com');
  assert.equal(normaliseHostName('*.com'), undefined);
  assert.equal(normaliseHostName('a.*.com'), undefined);
  assert.equal(normaliseHostName('bad name'), undefined);
  const ids = [
    { label: 'wild', hostNames: ['*.example.com'] },
    { label: 'exact', hostNames: ['www.example.com'] },
  ];
  assert.equal(bestHostMatch(ids, 'www.example.com')?.label, 'exact');
  assert.equal(bestHostMatch(ids, 'api.example.com')?.label, 'wild');
  assert.equal(bestHostMatch(ids, 'example.org'), undefined);
});

async function twoIdentities(card: EmulatedCard, ca: TestCa): Promise<void> {
  await personalise(card, ca, 'a', { cn: 'A', dns: ['a.example.com', 'alt.example.net'] });
  await personalise(card, ca, 'b', { cn: 'B', dns: ['*.b.example.com'] });
}

const noHostCheck = { checkServerIdentity: () => undefined };

async function servedCn(card: EmulatedCard, ca: TestCa, servername: string, hostCheck = true): Promise<{ cn: string; label: string; sni: string | undefined }> {
  const s = await handshakeWith(card, ca.pem, { servername, ...(hostCheck ? {} : noHostCheck) });
  assert.equal(s.hs.outcome, 'success', `servername ${servername}: ${String(s.error)}`);
  const cn = String(s.client.getPeerCertificate().subject.CN);
  const info = await sessionInfo(card);
  s.client.destroy();
  const sni = info.get(0x24);
  return { cn, label: new TextDecoder().decode(info.get(0x26)!), sni: sni && new TextDecoder().decode(sni) };
}

test('two identities: the SNI picks the certificate (exact and wildcard names, any case); GET-DATA lists the host names', async () => {
  const ca = await TestCa.create();
  const { card, cleanup } = newCard();
  try {
    await twoIdentities(card, ca);
    assert.deepEqual(await servedCn(card, ca, 'a.example.com'), { cn: 'A', label: 'a', sni: 'a.example.com' });
    assert.equal((await servedCn(card, ca, 'alt.example.net')).cn, 'A');
    assert.deepEqual(await servedCn(card, ca, 'x.b.example.com'), { cn: 'B', label: 'b', sni: 'x.b.example.com' });
    assert.equal((await servedCn(card, ca, 'WWW.B.Example.COM', false)).cn, 'B');
    assert.equal((await servedCn(card, ca, 'A.EXAMPLE.COM', false)).cn, 'A');
    // identity TLV 13: the host names the card matches
    const id = await xcv(card, a0(0xca, 0x01, 0x00, utf8('b')));
    const names = parseTlvs(id.data).filter((t) => t.tag === 0x13).map((t) => new TextDecoder().decode(t.value));
    assert.deepEqual(names, ['*.b.example.com']);
  } finally {
    card.close();
    cleanup();
  }
});

test('no SNI → the default identity (first with a chain, or the SET-IDENTITY choice); unknown SNI → default under policy 00', async () => {
  const ca = await TestCa.create();
  const { card, cleanup } = newCard();
  try {
    await twoIdentities(card, ca);
    assert.deepEqual(await servedCn(card, ca, '', false), { cn: 'A', label: 'a', sni: undefined });
    // one label too many for the wildcard: no match → default
    assert.equal((await servedCn(card, ca, 'deep.x.b.example.com', false)).cn, 'A');
    assert.equal((await servedCn(card, ca, 'unknown.example.org', false)).cn, 'A');
    assert.equal(send(card, cmd(0xa0, 0x16, 0x00, 0x80, utf8('b'))).sw, 0x9000);
    assert.equal((await servedCn(card, ca, '', false)).cn, 'B');
    assert.equal((await servedCn(card, ca, 'unknown.example.org', false)).cn, 'B');
    // an SNI match still wins over the SET-IDENTITY choice
    assert.equal((await servedCn(card, ca, 'a.example.com')).cn, 'A');
  } finally {
    card.close();
    cleanup();
  }
});

test('unknown SNI under policy 01: unrecognized_name alert (7001, EAP-Failure), Node reports it; known names and no SNI still work', async () => {
  const ca = await TestCa.create();
  const { card, cleanup } = newCard();
  try {
    await twoIdentities(card, ca);
    const put = await xcv(card, a0(0xdc, 0x00, 0x00, Uint8Array.of(0x32, 0x01, 0x01), 0));
    assert.equal(put.sw, 0x9000);
    const policy = parseTlvs(findTlv(parseTlvs((await xcv(card, a0(0xca, 0, 0))).data), 0x09)!);
    assert.deepEqual(findTlv(policy, 0x32), Uint8Array.of(1));

    const s = await handshakeWith(card, ca.pem, { servername: 'nobody.example.org', ...noHostCheck });
    assert.equal(s.hs.outcome, 'failure');
    assert.ok(s.hs.sawFailureSw);
    assert.ok(s.error, 'the client saw an error');
    assert.equal(s.error.code, 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME', s.error.message);
    assert.deepEqual(send(card, cmd(0xa0, 0x19, 0x00, 0x00, new Uint8Array(0), 1)).data, Uint8Array.of(4));
    s.client.destroy();

    assert.equal((await servedCn(card, ca, 'x.b.example.com')).cn, 'B');
    assert.equal((await servedCn(card, ca, '', false)).cn, 'A');
  } finally {
    card.close();
    cleanup();
  }
});
