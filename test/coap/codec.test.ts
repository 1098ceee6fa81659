// The CoAP codec: RFC 7252 UDP messages, RFC 8323 stream frames, options, Block, signalling.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  codecFor,
  decodeTcp,
  decodeUdp,
  encodeTcp,
  encodeUdp,
  peekTcpFrame,
  TcpFrameSplitter,
  decodeBlock,
  encodeBlock,
  blockSize,
  option,
  optionByName,
  decodeOptionValue,
  checkOptions,
  parseCsm,
  csmMessage,
  abortMessage,
  parseCode,
  codeString,
  isCoapError,
  SIGNAL,
  OPTION,
  formatLinks,
  parseLinks,
  filterLinks,
  type CoapMessage,
} from '../../src/coap/index.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const E = new Uint8Array(0);

function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => isCoapError(e) && (e as { code: string }).code === code);
}

test('UDP: RFC 7252 example GET /temperature (CON, MID 0x7d34, token 0x71) round-trips', () => {
  const m: CoapMessage = { type: 'CON', messageId: 0x7d34, code: 0x01, token: Uint8Array.of(0x71), options: [option('Uri-Path', 'temperature')], payload: E };
  const b = encodeUdp(m);
  assert.equal(toHex(b), '41017d3471bb74656d7065726174757265');
  const d = decodeUdp(b);
  assert.equal(d.type, 'CON');
  assert.equal(d.messageId, 0x7d34);
  assert.equal(codeString(d.code), '0.01');
  assert.deepEqual(d.options, m.options);
});

test('UDP: header rules — version, reserved TKL, Empty message, truncation', () => {
  throwsCode(() => decodeUdp(hex('810100')), 'ERR_COAP_TRUNCATED');
  throwsCode(() => decodeUdp(hex('81010001')), 'ERR_COAP_VERSION');
  throwsCode(() => decodeUdp(hex('49010001')), 'ERR_COAP_TOKEN_LENGTH');
  throwsCode(() => decodeUdp(hex('4801000102')), 'ERR_COAP_TRUNCATED');
  assert.equal(decodeUdp(hex('60001234')).type, 'ACK'); // Empty ACK
  throwsCode(() => decodeUdp(hex('6000123401')), 'ERR_COAP_EMPTY_MESSAGE');
  throwsCode(() => encodeUdp({ code: 0, token: Uint8Array.of(1), options: [], payload: E }), 'ERR_COAP_EMPTY_MESSAGE');
  throwsCode(() => encodeUdp({ code: 1, token: new Uint8Array(9), options: [], payload: E }), 'ERR_COAP_TOKEN_LENGTH');
});

test('options: delta/length nibbles 13 and 14 with extensions; 15 reserved; marker without payload', () => {
  const long = new Uint8Array(300).fill(0x61);
  const m: CoapMessage = { code: 0x45, token: E, options: [{ number: 1, value: Uint8Array.of(1) }, { number: 300, value: long }, { number: 2000, value: new Uint8Array(13) }], payload: Uint8Array.of(9) };
  const b = encodeTcp(m);
  const d = decodeTcp(b);
  assert.deepEqual(d.options.map((o) => [o.number, o.value.length]), [[1, 1], [300, 300], [2000, 13]]);
  assert.deepEqual([...d.payload], [9]);
  // raw: delta 13 (1-byte ext), delta 14 (2-byte ext)
  assert.equal(decodeUdp(hex('40010000 d1 00 ff')).options[0]!.number, 13);
  assert.equal(decodeUdp(hex('40010000 e1 0000 ff')).options[0]!.number, 269);
  throwsCode(() => decodeUdp(hex('40010000 f1 00')), 'ERR_COAP_OPTION_DELTA');
  throwsCode(() => decodeUdp(hex('40010000 1f 00')), 'ERR_COAP_OPTION_LENGTH');
  throwsCode(() => decodeUdp(hex('40010000 ff')), 'ERR_COAP_PAYLOAD_MARKER');
  throwsCode(() => decodeUdp(hex('40010000 b5 6162')), 'ERR_COAP_OPTION_LENGTH'); // runs past the end
  throwsCode(() => decodeUdp(hex('40010000 d0')), 'ERR_COAP_TRUNCATED');
  throwsCode(() => decodeUdp(hex('40010000 e0 ff ff e0 ff ff')), 'ERR_COAP_OPTION_DELTA'); // number > 65535
});

test('TCP framing: Len nibble 0..12, 13, 14, 15 with extended lengths', () => {
  for (const [n, nibble, ext] of [
    [0, 0, 0],
    [12, 0, 0],
    [13, 13, 1],
    [268, 13, 1],
    [269, 14, 2],
    [65804, 14, 2],
    [65805, 15, 4],
    [70000, 15, 4],
  ] as const) {
    // payload of n-1 bytes + marker = n bytes after the code (no options)
    const payload = new Uint8Array(Math.max(0, n - 1)).fill(7);
    const m: CoapMessage = { code: 0x45, token: Uint8Array.of(1, 2), options: [], payload };
    const b = encodeTcp(m);
    const len = payload.length ? payload.length + 1 : 0;
    const wantNibble = len < 13 ? len : len < 269 ? 13 : len < 65805 ? 14 : 15;
    assert.equal(b[0]! >>> 4, n === 0 ? 0 : wantNibble, `n=${n}`);
    assert.equal(b[0]! & 0xf, 2);
    assert.equal(b.length, 1 + (len < 13 ? 0 : len < 269 ? 1 : len < 65805 ? 2 : 4) + 1 + 2 + len);
    void nibble;
    void ext;
    const d = decodeTcp(b, { maxMessageSize: 1 << 20 });
    assert.equal(d.payload.length, payload.length);
    assert.deepEqual([...d.token], [1, 2]);
  }
  // RFC 8323 figure: a CSM with Max-Message-Size 1152 and Block-Wise-Transfer
  const csm = encodeTcp(csmMessage({ maxMessageSize: 1152, blockWiseTransfer: true }));
  assert.equal(toHex(csm), '40e1' + '220480' + '20');
  assert.deepEqual(parseCsm(decodeTcp(csm)), { maxMessageSize: 1152, blockWiseTransfer: true });
});

test('TCP framing: size bound checked from the header, TKL 9..15, trailing bytes, splitter', () => {
  throwsCode(() => peekTcpFrame(hex('f0 7fffffff'), { maxMessageSize: 4096 }), 'ERR_COAP_TOO_LARGE');
  throwsCode(() => peekTcpFrame(hex('09'), {}), 'ERR_COAP_TOKEN_LENGTH');
  assert.equal(peekTcpFrame(hex('d0'), {}), null);
  throwsCode(() => decodeTcp(hex('0001 00')), 'ERR_COAP_TRUNCATED');
  throwsCode(() => decodeTcp(hex('1001')), 'ERR_COAP_TRUNCATED');
  const frames = [encodeTcp({ code: 1, token: Uint8Array.of(5), options: [option('Uri-Path', 'a')], payload: E }), encodeTcp(csmMessage({ maxMessageSize: 9000 })), encodeTcp({ code: 0x45, token: E, options: [], payload: new Uint8Array(500) })];
  const all = Buffer.concat(frames);
  const sp = new TcpFrameSplitter();
  const got: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += 7) got.push(...sp.push(all.subarray(i, i + 7)));
  assert.equal(got.length, 3);
  assert.equal(sp.buffered, 0);
  assert.deepEqual(got.map(toHex), frames.map(toHex));
});

test('option registry: formats, bounds, criticality, repeated non-repeatables', () => {
  assert.equal(optionByName('Content-Format').number, 12);
  assert.equal(OPTION.Block2, 23);
  assert.equal(OPTION.Size1, 60);
  assert.deepEqual([...option('Observe', 0).value], []);
  assert.deepEqual([...option('Max-Age', 0x10000).value], [1, 0, 0]);
  assert.equal(decodeOptionValue(optionByName('Uri-Port'), Uint8Array.of(0, 0x16, 0x34)), 0x1634); // leading zero accepted
  throwsCode(() => option('Uri-Host', ''), 'ERR_COAP_OPTION_VALUE');
  throwsCode(() => option('ETag', new Uint8Array(9)), 'ERR_COAP_OPTION_VALUE');
  throwsCode(() => option('No-Such', 1), 'ERR_COAP_UNKNOWN_OPTION');
  const req = (options: { number: number; value: Uint8Array }[]): CoapMessage => ({ code: 1, token: E, options, payload: E });
  assert.equal(checkOptions(req([{ number: 9, value: E }])).badCritical, 9); // unknown critical
  assert.equal(checkOptions(req([{ number: 10, value: E }])).badCritical, undefined); // unknown elective: ignored
  assert.equal(checkOptions(req([{ number: 17, value: new Uint8Array(3) }])).badCritical, 17); // Accept too long
  assert.equal(checkOptions(req([{ number: 12, value: new Uint8Array(3) }])).decoded.length, 0); // elective malformed: dropped
  assert.equal(checkOptions(req([{ number: 3, value: Uint8Array.of(0x61) }, { number: 3, value: Uint8Array.of(0x62) }])).badCritical, 3);
  assert.equal(checkOptions(req([{ number: 11, value: Uint8Array.of(0xff) }])).badCritical, 11); // not UTF-8
  // signalling options are per code
  const csmUnknown: CoapMessage = { code: SIGNAL.CSM, token: E, options: [{ number: 3, value: E }], payload: E };
  assert.equal(checkOptions(csmUnknown).badCritical, 3);
  assert.equal(checkOptions({ ...abortMessage('x', 3) }).badCritical, undefined);
});

test('Block options: NUM/M/SZX encode/decode, BERT size', () => {
  assert.deepEqual(decodeBlock(encodeBlock({ num: 0, more: true, szx: 6 })), { num: 0, more: true, szx: 6 });
  assert.deepEqual([...encodeBlock({ num: 0, more: false, szx: 0 })], []);
  assert.deepEqual([...encodeBlock({ num: 1, more: true, szx: 6 })], [0x1e]);
  assert.deepEqual(decodeBlock(Uint8Array.of(0xff, 0xff, 0xfe)), { num: 0xfffff, more: true, szx: 6 });
  assert.equal(blockSize(0), 16);
  assert.equal(blockSize(6), 1024);
  assert.equal(blockSize(7), 1024);
  throwsCode(() => encodeBlock({ num: 1 << 20, more: false, szx: 0 }), 'ERR_COAP_BLOCK');
  throwsCode(() => decodeBlock(Uint8Array.of(1, 2, 3, 4)), 'ERR_COAP_BLOCK');
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xfffff }), fc.boolean(), fc.integer({ min: 0, max: 7 }), (num, more, szx) => {
      assert.deepEqual(decodeBlock(encodeBlock({ num, more, szx })), { num, more, szx });
    }),
  );
});

test('codes: parse/format, codecFor', () => {
  assert.equal(parseCode('2.05'), 0x45);
  assert.equal(codeString(0xe1), '7.01');
  throwsCode(() => parseCode('2.5'), 'ERR_COAP_CODE');
  throwsCode(() => parseCode('2.32'), 'ERR_COAP_CODE');
  assert.equal(codecFor('udp').encode, encodeUdp);
  assert.equal(codecFor('tcp').decode, decodeTcp);
});

test('link format: format, parse, filter (RFC 6690)', () => {
  const links = [
    { href: '/power', attrs: { rt: 'plug.power', if: 'core.s', ct: 0, obs: true } },
    { href: '/status', attrs: { rt: ['plug.status', 'x'], ct: 50, title: 'a "q"' } },
  ];
  const t = formatLinks(links);
  assert.equal(t, '</power>;rt="plug.power";if="core.s";ct=0;obs,</status>;rt="plug.status x";ct=50;title="a \\"q\\""');
  const p = parseLinks(t);
  assert.equal(p[0]!.attrs.obs, true);
  assert.equal(p[1]!.attrs.title, 'a "q"');
  assert.deepEqual(filterLinks(links, ['rt=plug.s*']).map((l) => l.href), ['/status']);
  assert.deepEqual(filterLinks(links, ['rt=x']).map((l) => l.href), ['/status']);
  assert.deepEqual(filterLinks(links, ['href=/power']).map((l) => l.href), ['/power']);
});

// ---- property tests

const arbOption = fc.record({ number: fc.integer({ min: 0, max: 0xffff }), value: fc.uint8Array({ maxLength: 300 }) });
const arbMessage = fc.record({
  code: fc.integer({ min: 1, max: 255 }),
  token: fc.uint8Array({ maxLength: 8 }),
  options: fc.array(arbOption, { maxLength: 12 }).map((os) => [...os].sort((a, b) => a.number - b.number)),
  payload: fc.uint8Array({ maxLength: 2000 }),
});

test('property: TCP encode/decode round trip (and through the splitter in random pieces)', () => {
  fc.assert(
    fc.property(arbMessage, fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }), (m, cuts) => {
      const b = encodeTcp(m);
      const d = decodeTcp(b);
      assert.equal(d.code, m.code);
      assert.deepEqual([...d.token], [...m.token]);
      assert.deepEqual(d.options.map((o) => [o.number, [...o.value]]), m.options.map((o) => [o.number, [...o.value]]));
      assert.deepEqual([...d.payload], [...m.payload]);
      const sp = new TcpFrameSplitter();
      const frames: Uint8Array[] = [];
      let i = 0;
      let k = 0;
      while (i < b.length) {
        const n = cuts[k++ % cuts.length]!;
        frames.push(...sp.push(b.subarray(i, i + n)));
        i += n;
      }
      assert.equal(frames.length, 1);
      assert.equal(toHex(frames[0]!), toHex(b));
    }),
    { numRuns: 300 },
  );
});

test('property: UDP encode/decode round trip', () => {
  fc.assert(
    fc.property(arbMessage, fc.constantFrom('CON', 'NON', 'ACK', 'RST' as const), fc.integer({ min: 0, max: 0xffff }), (m, type, messageId) => {
      const d = decodeUdp(encodeUdp({ ...m, type, messageId }));
      assert.equal(d.type, type);
      assert.equal(d.messageId, messageId);
      assert.equal(d.code, m.code);
      assert.deepEqual([...d.token], [...m.token]);
      assert.deepEqual(d.options.map((o) => o.number), m.options.map((o) => o.number));
      assert.deepEqual([...d.payload], [...m.payload]);
    }),
    { numRuns: 300 },
  );
});

test('property: garbage never throws anything but ERR_COAP_* (UDP, TCP, splitter, option checks)', () => {
  const onlyCoap = (fn: () => unknown): void => {
    try {
      fn();
    } catch (e) {
      if (!isCoapError(e) || !/^ERR_COAP_/.test((e as { code: string }).code)) throw e;
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
      onlyCoap(() => checkOptions(decodeUdp(b)));
      onlyCoap(() => checkOptions(decodeTcp(b, { maxMessageSize: 4096 })));
      onlyCoap(() => new TcpFrameSplitter({ maxMessageSize: 4096 }).push(b).map((f) => checkOptions(decodeTcp(f))));
      onlyCoap(() => decodeBlock(b.subarray(0, 4)));
    }),
    { numRuns: 3000 },
  );
  // mutated valid frames hit the deeper paths
  fc.assert(
    fc.property(arbMessage, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), (m, flips) => {
      const b = encodeTcp(m);
      for (const [i, v] of flips) b[i % b.length] = v;
      onlyCoap(() => checkOptions(decodeTcp(b, { maxMessageSize: 1 << 20 })));
      const u = encodeUdp(m);
      for (const [i, v] of flips) u[i % u.length] = v;
      onlyCoap(() => checkOptions(decodeUdp(u)));
    }),
    { numRuns: 2000 },
  );
});
