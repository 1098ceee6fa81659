/**
 * The nine pySim SCP03 sessions (test/fixtures/gp/scp03-pysim.json: AES-128/192/256 × security
 * levels 11/03/33, i = 70, S8) reproduced byte for byte by the off-card side (Scp03Host) and by the
 * card side (Scp03Card loaded with the same keys, the eUICC ISD-R AID the vectors were taken with,
 * and the sequence counter the response carries).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex, toHex } from '../../src/bytes/index.js';
import { Scp03Card, Scp03Host, staticKeys, type StaticKeys } from '../../src/gp/index.js';

interface Vectors {
  source: string;
  plain: Record<'getEid' | 'getEidResponse' | 'case1' | 'case2' | 'case3' | 'case4', string>;
  keysets: Record<string, { kvn: string; enc: string; mac: string; dek: string }>;
  tests: {
    name: string;
    keyset: string;
    securityLevel: string;
    initializeUpdate: string;
    initializeUpdateResponse: string;
    externalAuthenticate: string;
    getEidCommand: string;
    getEidResponseWrapped: string;
    case1: string;
    case2: string;
    case3: string;
    case4: string;
  }[];
}

const V: Vectors = JSON.parse(
  readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'gp', 'scp03-pysim.json'), 'utf8'),
);
/** The AID the pseudo-random challenges of these vectors were computed with (eUICC ISD-R). */
const ISD_R = fromHex('A0000005591010FFFFFFFF8900000100');
const CASES = ['case1', 'case2', 'case3', 'case4'] as const;
const hex = (s: string) => toHex(fromHex(s));

function keysOf(name: string): StaticKeys {
  const k = V.keysets[name]!;
  return staticKeys(parseInt(k.kvn, 16), fromHex(k.enc), fromHex(k.mac), fromHex(k.dek));
}

test('the fixture holds all nine pySim sessions and keeps its source note', () => {
  assert.match(V.source, /osmocom\/pysim/);
  assert.equal(V.tests.length, 9);
  assert.deepEqual(new Set(V.tests.map((t) => t.securityLevel)), new Set(['11', '03', '33']));
});

for (const t of V.tests) {
  test(`off-card side reproduces pySim ${t.name}`, () => {
    const iuCmd = fromHex(t.initializeUpdate);
    const host = new Scp03Host({ keys: keysOf(t.keyset), sdAid: ISD_R });
    assert.equal(toHex(host.initializeUpdate(iuCmd.subarray(5, 13))), hex(t.initializeUpdate));
    const info = host.processInitializeUpdateResponse(fromHex(t.initializeUpdateResponse + '9000'));
    assert.equal(info.i, 0x70);
    assert.equal(info.sequenceCounter, parseInt(t.initializeUpdateResponse.slice(-6), 16));
    assert.equal(toHex(host.externalAuthenticate(parseInt(t.securityLevel, 16))), hex(t.externalAuthenticate));
    host.processExternalAuthenticateResponse(fromHex('9000'));
    assert.equal(toHex(host.wrap(fromHex(V.plain.getEid))), hex(t.getEidCommand));
    const r = host.unwrap(fromHex(t.getEidResponseWrapped + '9000'));
    assert.equal(r.sw, 0x9000);
    assert.equal(toHex(r.data), hex(V.plain.getEidResponse));
    for (const c of CASES) {
      assert.equal(toHex(host.wrap(fromHex(V.plain[c]))), hex(t[c]), `${t.name} ${c}`);
      host.unwrap(fromHex('6a88')); // keep the FIFO in step; an error SW carries no R-MAC
    }
    host.close();
  });

  test(`card side reproduces pySim ${t.name}`, () => {
    const keys = keysOf(t.keyset);
    const counter = parseInt(t.initializeUpdateResponse.slice(-6), 16);
    const card = new Scp03Card({ sdAid: ISD_R, lookupKeys: (kvn) => (kvn === keys.kvn ? keys : undefined) });
    const iu = card.initializeUpdate(fromHex(t.initializeUpdate), counter);
    assert.equal(toHex(iu.response), hex(t.initializeUpdateResponse) + '9000');
    const ea = card.externalAuthenticate(fromHex(t.externalAuthenticate));
    assert.equal(ea.sw, 0x9000);
    assert.equal(card.state, 'open');
    assert.equal(card.securityLevel, parseInt(t.securityLevel, 16));
    const eid = card.unwrapCommand(fromHex(t.getEidCommand));
    assert.ok(eid.ok, 'getEid unwraps');
    assert.equal(toHex(eid.apdu), hex(V.plain.getEid));
    assert.equal(eid.secured, true);
    const rsp = card.wrapResponse(fromHex(V.plain.getEidResponse), 0x9000);
    assert.equal(toHex(rsp), hex(t.getEidResponseWrapped) + '9000');
    for (const c of CASES) {
      const u = card.unwrapCommand(fromHex(t[c]));
      assert.ok(u.ok, `${t.name} ${c} unwraps`);
      assert.equal(toHex(u.apdu), hex(V.plain[c]), `${t.name} ${c}`);
      card.wrapResponse(new Uint8Array(0), 0x9000);
    }
  });
}
