import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  parseEap, parseEapTls, encodeEapTls, eapTlsAck, eapSuccess, eapFailure, fragmentTls, EapTlsReassembler, EapTlsFlag, EapCode,
} from '../../src/eap/index.js';
import { fromHex, toHex } from '../../src/bytes/index.js';

test('ACK, Success and Failure have the drafts byte layouts', () => {
  assert.equal(toHex(eapTlsAck(EapCode.response, 0x10)), '021000060d00');
  assert.equal(toHex(eapTlsAck(EapCode.request, 0x11)), '011100060d00');
  assert.equal(toHex(eapSuccess(7)), '03070004');
  assert.equal(toHex(eapFailure(7)), '04070004');
});

test('the GMT time travels beyond the EAP Length (draft-urien-eap-smartcard §14.1)', () => {
  // A0 80 00 00 0A | 01 id 00 06 0D 20 | tt tt tt tt  (the drafts' Start), EAP Length stays 6
  const p = parseEapTls(fromHex('010100060d20 5582e9d1'));
  assert.equal(p.flags, EapTlsFlag.start);
  assert.equal(toHex(p.trailing), '5582e9d1');
  const again = encodeEapTls({ code: 2, id: 3, flags: 0x80, data: fromHex('160301'), trailing: fromHex('5582e9d1') });
  assert.equal(toHex(again), '020300' + '0d' + '0d80' + '00000003' + '160301' + '5582e9d1');
});

test('broken EAP lengths and types are rejected', () => {
  for (const hex of ['0201', '02010010' + '0d00', '02010004', '05010004', '03010005ff', '020100050d', '020100070d8000', '020100060dff']) {
    assert.throws(() => parseEapTls(fromHex(hex)), { code: 'ERR_EAP_MALFORMED' }, hex);
  }
  assert.throws(() => parseEapTls(fromHex('0201000601ff')), /expected EAP-TLS/);
  assert.equal(parseEap(fromHex('03090004')).code, 3);
});

test('fragment → reassemble round-trips any message and fragment size', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 5000 }), fc.integer({ min: 1, max: 1500 }), (msg, max) => {
      const frags = fragmentTls(msg, max);
      const r = new EapTlsReassembler(10000);
      let out: Uint8Array | undefined;
      frags.forEach((f, i) => {
        const wire = encodeEapTls({ code: 2, id: i, flags: f.flags, tlsLength: f.tlsLength, data: f.data });
        const got = r.push(parseEapTls(wire));
        if (i < frags.length - 1) assert.equal(got, undefined);
        else out = got;
      });
      assert.deepEqual(out, msg);
      assert.ok(frags[0]!.flags & EapTlsFlag.length);
      assert.equal(frags.filter((f) => f.flags & EapTlsFlag.more).length, frags.length - 1);
    }),
  );
});

test('the reassembler bounds memory and checks the announced length', () => {
  const r = new EapTlsReassembler(100);
  assert.throws(() => r.push({ code: 2, id: 0, flags: 0x80 | 0x40, tlsLength: 101, data: new Uint8Array(10), trailing: new Uint8Array(0) }), {
    code: 'ERR_EAP_TOO_LARGE',
  });
  r.reset();
  r.push({ code: 2, id: 0, flags: 0xc0, tlsLength: 20, data: new Uint8Array(10), trailing: new Uint8Array(0) });
  assert.throws(() => r.push({ code: 2, id: 1, flags: 0, data: new Uint8Array(5), trailing: new Uint8Array(0) }), /TLS-Message-Length 20 but 15/);
  assert.throws(() => r.push({ code: 2, id: 1, flags: 0x40, data: new Uint8Array(5), trailing: new Uint8Array(0) }), /lacks the L flag/);
  r.push({ code: 2, id: 0, flags: 0xc0, tlsLength: 20, data: new Uint8Array(10), trailing: new Uint8Array(0) });
  assert.throws(() => r.push({ code: 2, id: 1, flags: 0x80, tlsLength: 20, data: new Uint8Array(10), trailing: new Uint8Array(0) }), /not the first/);
});
