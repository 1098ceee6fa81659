// The CoAP server over an in-memory Duplex pair (no card): RFC 8323 signalling, requests by token,
// Observe, Block1/Block2, bad input → 4.xx or Abort, and the demo plug's resources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createCoapServer, codeString, parseCode, SIGNAL, OPTION, encodeBlock, decodeBlock, parseLinks, type CoapServer, type CoapServerOptions, type CoapRequestListener } from '../../src/coap/index.js';
import { createPlugCoapServer, blobBytes, parseRelayBody } from '../../src/servers/coap/index.js';
import { createPlugState } from '../../src/servers/https/index.js';
import { duplexPair, RawClient, tok, opt, path, text, optUint, optVal, until } from './helpers.js';

const GET = 1;
const POST = 2;
const PUT = 3;

function connect(server: CoapServer, maxMessageSize?: number, bert = false): RawClient {
  const [a, b] = duplexPair();
  server.handleStream(a);
  const c = new RawClient(b);
  c.csm(maxMessageSize, bert);
  return c;
}

function echoServer(opts: CoapServerOptions = {}, handler?: CoapRequestListener): CoapServer {
  return createCoapServer(
    opts,
    handler ??
      ((req, res) => {
        res.setOption('Content-Format', 'text/plain');
        res.end(`${req.method} ${req.url} ${req.payload.length}`);
      }),
  );
}

test('CSM first, requests matched by token, responses can be out of order', async () => {
  const server = echoServer({}, (req, res) => {
    const delay = req.pathname === '/slow' ? 50 : 0;
    setTimeout(() => res.end(`${req.method} ${req.url}`), delay);
  });
  const c = connect(server);
  const csm = await c.next();
  assert.equal(csm.code, SIGNAL.CSM);
  assert.equal(optUint(csm, 2), server.maxMessageSize);
  assert.ok(optVal(csm, 4) !== undefined, 'Block-Wise-Transfer advertised');
  c.send({ code: GET, token: tok(1), options: path('slow') });
  c.send({ code: GET, token: tok(2), options: [...path('a/b c'), opt(15, 'x=1'), opt(15, 'y')] });
  const first = await c.next((m) => m.code !== SIGNAL.CSM);
  assert.deepEqual([...first.token], [2]);
  assert.equal(text(first), 'GET /a/b%20c?x=1&y');
  const second = await c.next();
  assert.deepEqual([...second.token], [1]);
  assert.equal(codeString(second.code), '2.05');
  await server.close();
});

test('Ping → Pong with the same token (Custody echoed); Empty ignored; Release ends the connection', async () => {
  const server = echoServer();
  const c = connect(server);
  await c.next();
  c.sendRaw(Uint8Array.of(0x00, 0x00)); // Empty message
  c.send({ code: SIGNAL.PING, token: tok(9, 9), options: [opt(2, new Uint8Array(0))] });
  const pong = await c.next();
  assert.equal(pong.code, SIGNAL.PONG);
  assert.deepEqual([...pong.token], [9, 9]);
  assert.ok(optVal(pong, 2) !== undefined);
  c.send({ code: SIGNAL.RELEASE });
  await c.waitEnd();
});

test('a first message that is not a CSM, malformed frames, TKL 15 and oversized frames → Abort', async () => {
  const server = echoServer({ maxMessageSize: 2048 });
  const cases: [string, (c: RawClient) => void, RegExp][] = [
    ['no CSM', (c) => c.send({ code: GET, token: tok(1), options: path('x') }), /expected a CSM/],
    ['bad option delta', (c) => (c.csm(), c.sendRaw(Uint8Array.of(0x20, 0x01, 0xf1, 0x00))), /ERR_COAP_OPTION_DELTA/],
    ['bad option length', (c) => (c.csm(), c.sendRaw(Uint8Array.of(0x20, 0x01, 0xb5, 0x61))), /ERR_COAP_OPTION_LENGTH/],
    ['marker without payload', (c) => (c.csm(), c.sendRaw(Uint8Array.of(0x10, 0x01, 0xff))), /ERR_COAP_PAYLOAD_MARKER/],
    ['TKL 15', (c) => (c.csm(), c.sendRaw(Uint8Array.of(0x0f, 0x01))), /ERR_COAP_TOKEN_LENGTH/],
    ['too large', (c) => (c.csm(), c.sendRaw(Uint8Array.of(0xe0, 0x10, 0x00, 0x01))), /ERR_COAP_TOO_LARGE/],
    ['unknown critical CSM option', (c) => c.send({ code: SIGNAL.CSM, options: [opt(3, 'x')] }), /unknown critical option 3/],
  ];
  for (const [name, act, re] of cases) {
    const [a, b] = duplexPair();
    server.handleStream(a);
    const c = new RawClient(b);
    act(c);
    const abort = await c.next((m) => m.code === SIGNAL.ABORT);
    assert.match(text(abort), re, name);
    if (name === 'unknown critical CSM option') assert.equal(optUint(abort, 2), 3);
    await c.waitEnd();
  }
  // another client is not disturbed
  const ok = connect(server);
  ok.send({ code: GET, token: tok(1), options: path('fine') });
  assert.equal(text(await ok.next((m) => m.code === parseCode('2.05'))), 'GET /fine 0');
  await server.close();
});

test('unknown critical option → 4.02 with a diagnostic; unknown elective ignored; unknown method → 4.05', async () => {
  const server = echoServer();
  const c = connect(server);
  await c.next();
  c.send({ code: GET, token: tok(1), options: [...path('x'), opt(2049, 'zz')] });
  const r = await c.next();
  assert.equal(codeString(r.code), '4.02');
  assert.match(text(r), /unknown critical option 2049/);
  c.send({ code: GET, token: tok(2), options: [...path('x'), opt(2050, 'zz')] });
  assert.equal(codeString((await c.next()).code), '2.05');
  c.send({ code: 0x1f, token: tok(3), options: path('x') });
  assert.equal(codeString((await c.next()).code), '4.05');
  c.send({ code: GET, token: tok(4), options: [opt(3, 'a'), opt(3, 'b')] }); // Uri-Host twice
  assert.equal(codeString((await c.next()).code), '4.02');
  await server.close();
});

test('handler errors → 5.00; no listener → 4.04; res.code and options', async () => {
  const server = createCoapServer((req, res) => {
    if (req.pathname === '/throw') throw new Error('boom');
    if (req.pathname === '/reject') return Promise.reject(new Error('async boom'));
    res.code = '2.01';
    res.setOption('Location-Path', ['new', 'thing']);
    res.setOption('Content-Format', 'application/json');
    res.end('{}');
  });
  const c = connect(server);
  await c.next();
  c.send({ code: GET, token: tok(1), options: path('throw') });
  let r = await c.next();
  assert.equal(codeString(r.code), '5.00');
  assert.match(text(r), /boom/);
  c.send({ code: GET, token: tok(2), options: path('reject') });
  r = await c.next();
  assert.equal(codeString(r.code), '5.00');
  c.send({ code: POST, token: tok(3), options: path('make'), payload: Uint8Array.of(1) });
  r = await c.next();
  assert.equal(codeString(r.code), '2.01');
  assert.deepEqual(r.options.filter((o) => o.number === 8).map((o) => Buffer.from(o.value).toString()), ['new', 'thing']);
  assert.equal(optUint(r, 12), 50);
  await server.close();
  const none = createCoapServer();
  const c2 = connect(none);
  await c2.next();
  c2.send({ code: GET, token: tok(1), options: path('x') });
  assert.equal(codeString((await c2.next()).code), '4.04');
  await none.close();
});

test('Block2: client SZX honoured, peer Max-Message-Size respected, blocks reassemble to the same bytes', async () => {
  const body = blobBytes(10_000);
  let calls = 0;
  const server = echoServer({}, (_req, res) => {
    calls++;
    res.setOption('Content-Format', 42);
    res.end(body);
  });
  // client asks for 256-byte blocks
  const c = connect(server, 100_000);
  await c.next();
  const parts: Buffer[] = [];
  for (let num = 0; ; num++) {
    c.send({ code: GET, token: tok(num & 0xff), options: [...path('big'), { number: OPTION.Block2, value: encodeBlock({ num, more: false, szx: 4 }) }] });
    const r = await c.next();
    assert.equal(codeString(r.code), '2.05');
    const b = decodeBlock(optVal(r, OPTION.Block2)!);
    assert.equal(b.num, num);
    assert.equal(b.szx, 4);
    if (num === 0) assert.equal(optUint(r, OPTION.Size2), body.length);
    parts.push(Buffer.from(r.payload));
    if (!b.more) break;
  }
  assert.equal(Buffer.concat(parts).compare(body), 0);
  assert.equal(calls, 1, 'later blocks served from the kept representation');
  // no Block2 asked, but the peer's Max-Message-Size (default 1152 before CSM says otherwise) forces slicing
  const small = connect(server, 600);
  await small.next();
  small.send({ code: GET, token: tok(1), options: path('big') });
  const r = await small.next();
  const b = decodeBlock(optVal(r, OPTION.Block2)!);
  assert.ok(b.more);
  assert.ok(r.payload.length <= 512, `block of ${r.payload.length}`);
  // out of range block
  small.send({ code: GET, token: tok(2), options: [...path('other'), { number: OPTION.Block2, value: encodeBlock({ num: 99, more: false, szx: 6 }) }] });
  assert.equal(codeString((await small.next()).code), '4.02');
  await server.close();
});

test('Block2 with BERT (SZX 7) when both CSMs carry Block-Wise-Transfer', async () => {
  const body = blobBytes(20_000);
  const server = echoServer({ maxMessageSize: 8192 }, (_req, res) => void res.end(body));
  const c = connect(server, 5000, true);
  await c.next();
  const parts: Buffer[] = [];
  let num = 0;
  for (;;) {
    c.send({ code: GET, token: tok(1), options: [...path('big'), { number: OPTION.Block2, value: encodeBlock({ num, more: false, szx: 7 }) }] });
    const r = await c.next();
    const b = decodeBlock(optVal(r, OPTION.Block2)!);
    assert.equal(b.szx, 7);
    assert.ok(r.payload.length <= 4096 && (b.more ? r.payload.length % 1024 === 0 : true));
    parts.push(Buffer.from(r.payload));
    if (!b.more) break;
    num = b.num + r.payload.length / 1024;
  }
  assert.equal(Buffer.concat(parts).compare(body), 0);
  await server.close();
});

test('Block1: 2.31 Continue, reassembly, 4.08 on a gap, 4.13 with Size1 when too large', async () => {
  const server = echoServer({ maxBodySize: 4096 }, (req, res) => {
    res.end(createHash('sha256').update(req.payload).digest('hex'));
  });
  const c = connect(server);
  await c.next();
  const body = blobBytes(3000);
  for (let num = 0; num * 1024 < body.length; num++) {
    const chunk = body.subarray(num * 1024, (num + 1) * 1024);
    const more = (num + 1) * 1024 < body.length;
    c.send({ code: PUT, token: tok(num), options: [...path('up'), { number: OPTION.Block1, value: encodeBlock({ num, more, szx: 6 }) }], payload: chunk });
    const r = await c.next();
    assert.equal(codeString(r.code), more ? '2.31' : '2.04');
    assert.deepEqual(decodeBlock(optVal(r, OPTION.Block1)!), { num, more, szx: 6 });
    if (!more) assert.equal(text(r), createHash('sha256').update(body).digest('hex'));
  }
  // gap: block 2 without 0 and 1
  c.send({ code: PUT, token: tok(7), options: [...path('gap'), { number: OPTION.Block1, value: encodeBlock({ num: 2, more: true, szx: 6 }) }], payload: new Uint8Array(1024) });
  assert.equal(codeString((await c.next()).code), '4.08');
  // too large: announced with Size1, and discovered while assembling
  c.send({ code: PUT, token: tok(8), options: [...path('big'), { number: OPTION.Block1, value: encodeBlock({ num: 0, more: true, szx: 6 }) }, opt(60, 100_000)], payload: new Uint8Array(1024) });
  let r = await c.next();
  assert.equal(codeString(r.code), '4.13');
  assert.equal(optUint(r, 60), 4096);
  for (let num = 0; num < 5; num++) {
    c.send({ code: PUT, token: tok(9), options: [...path('big2'), { number: OPTION.Block1, value: encodeBlock({ num, more: true, szx: 6 }) }], payload: new Uint8Array(1024) });
    r = await c.next();
    if (num < 4) assert.equal(codeString(r.code), '2.31');
  }
  assert.equal(codeString(r.code), '4.13');
  // a block of the wrong size
  c.send({ code: PUT, token: tok(10), options: [...path('odd'), { number: OPTION.Block1, value: encodeBlock({ num: 0, more: true, szx: 6 }) }], payload: new Uint8Array(10) });
  assert.equal(codeString((await c.next()).code), '4.00');
  await server.close();
});

test('Observe: registration, notifications with increasing sequence, deregistration (Observe 1) and connection close', async () => {
  const closed: string[] = [];
  let push: ((s: string) => void) | undefined;
  const server = createCoapServer((req, res) => {
    if (req.headers.Observe === 0 && res.observe) {
      push = (s) => res.write(s);
      res.on('close', () => closed.push(req.url));
      res.write('v0');
      return;
    }
    res.end('plain');
  });
  const c = connect(server);
  await c.next();
  c.send({ code: GET, token: tok(5), options: [opt(6, 0), ...path('obs')] });
  const first = await c.next();
  assert.equal(text(first), 'v0');
  const s0 = optUint(first, OPTION.Observe)!;
  push!('v1');
  push!('v2');
  const n1 = await c.next();
  const n2 = await c.next();
  assert.deepEqual([text(n1), text(n2)], ['v1', 'v2']);
  assert.ok(optUint(n1, OPTION.Observe)! > s0 && optUint(n2, OPTION.Observe)! > optUint(n1, OPTION.Observe)!);
  assert.deepEqual([...n2.token], [5]);
  // deregister: GET with Observe 1 on the same token → normal response, observation ends
  c.send({ code: GET, token: tok(5), options: [opt(6, 1), ...path('obs')] });
  const plain = await c.next();
  assert.equal(text(plain), 'plain');
  assert.equal(optVal(plain, OPTION.Observe), undefined);
  await until(() => closed.length === 1);
  assert.deepEqual(closed, ['/obs']);
  // register again, then the connection goes away
  c.send({ code: GET, token: tok(6), options: [opt(6, 0), ...path('obs2')] });
  await c.next();
  c.stream.destroy();
  await until(() => closed.length === 2);
  assert.deepEqual(closed, ['/obs', '/obs2']);
  await server.close();
});

test('Observe: an error code does not register; res.end(x) sends a last notification without Observe', async () => {
  const server = createCoapServer((req, res) => {
    if (req.pathname === '/nope') {
      res.code = '4.04';
      res.write('gone');
      return;
    }
    res.write('a');
    setTimeout(() => res.end('last'), 10);
  });
  const c = connect(server);
  await c.next();
  c.send({ code: GET, token: tok(1), options: [opt(6, 0), ...path('nope')] });
  const r = await c.next();
  assert.equal(codeString(r.code), '4.04');
  assert.equal(optVal(r, OPTION.Observe), undefined);
  c.send({ code: GET, token: tok(2), options: [opt(6, 0), ...path('x')] });
  assert.ok(optUint(await c.next(), OPTION.Observe) !== undefined);
  const last = await c.next();
  assert.equal(text(last), 'last');
  assert.equal(optVal(last, OPTION.Observe), undefined);
  await server.close();
});

test('idle connections are released; shouldYield releases long-lived ones', async () => {
  const server = echoServer({ idleTimeoutMs: 100 });
  const c = connect(server);
  await c.next();
  const rel = await c.next((m) => m.code === SIGNAL.RELEASE, 2000);
  assert.match(text(rel), /idle/);
  await c.waitEnd();
  const s2 = createCoapServer({ idleTimeoutMs: 0 }, (_req, res) => void res.write('x'));
  const [a, b] = duplexPair();
  s2.handleStream(a, { shouldYield: () => true, minHoldMs: 50 });
  const c2 = new RawClient(b);
  c2.csm();
  c2.send({ code: GET, token: tok(1), options: [opt(6, 0), ...path('p')] });
  const y = await c2.next((m) => m.code === SIGNAL.RELEASE, 3000);
  assert.match(text(y), /yielding/);
  await c2.waitEnd();
});

test('/.well-known/core lists the demo resources with rt/if/obs; filter by rt', async () => {
  const server = createPlugCoapServer(createPlugState());
  const c = connect(server);
  await c.next();
  c.send({ code: GET, token: tok(1), options: path('.well-known/core') });
  const r = await c.next();
  assert.equal(optUint(r, 12), 40);
  const links = parseLinks(text(r));
  const power = links.find((l) => l.href === '/power')!;
  assert.equal(power.attrs.obs, true);
  assert.equal(power.attrs.if, 'core.s');
  assert.ok(links.some((l) => l.href === '/status' && l.attrs.rt === 'setls.plug.status'));
  c.send({ code: GET, token: tok(2), options: [...path('.well-known/core'), opt(15, 'rt=setls.plug.p*')] });
  assert.deepEqual(parseLinks(text(await c.next())).map((l) => l.href), ['/power']);
  await server.close();
});

test('demo plug: /status JSON, /relay PUT on/off/JSON and 4.00 diagnostics, /power observe, state shared', async () => {
  const state = createPlugState();
  const server = createPlugCoapServer(state, { powerIntervalMs: 30 });
  const c = connect(server);
  await c.next();
  c.send({ code: GET, token: tok(1), options: path('status') });
  let r = await c.next();
  assert.equal(optUint(r, 12), 50);
  assert.equal(JSON.parse(text(r)).relay, 'off');
  c.send({ code: PUT, token: tok(2), options: path('relay'), payload: Buffer.from('on') });
  r = await c.next();
  assert.equal(codeString(r.code), '2.04');
  assert.equal(state.relay, 'on');
  c.send({ code: PUT, token: tok(3), options: [...path('relay'), opt(12, 50)], payload: Buffer.from('{"state":"off"}') });
  assert.equal(codeString((await c.next()).code), '2.04');
  assert.equal(state.relay, 'off');
  assert.equal(state.switches, 2);
  for (const bad of ['maybe', '{"state":1}', '{"state":"on","x":1}', '{nope']) {
    c.send({ code: PUT, token: tok(4), options: path('relay'), payload: Buffer.from(bad) });
    r = await c.next();
    assert.equal(codeString(r.code), '4.00', bad);
    assert.ok(text(r).length > 5);
  }
  c.send({ code: POST, token: tok(5), options: path('relay'), payload: Buffer.from('on') });
  assert.equal(codeString((await c.next()).code), '4.05');
  // observe /power: periodic notifications and one on a switch
  c.send({ code: GET, token: tok(6), options: [opt(6, 0), ...path('power')] });
  const n0 = await c.next((m) => m.token[0] === 6);
  assert.equal(text(n0), '0.0');
  await c.next((m) => m.token[0] === 6);
  state.relay = 'on'; // as an HTTPS PUT would
  const n = await c.next((m) => m.token[0] === 6 && text(m) !== '0.0');
  assert.ok(Number(text(n)) > 1000);
  c.send({ code: GET, token: tok(7), options: path('nothing') });
  assert.equal(codeString((await c.next((m) => m.token[0] === 7)).code), '4.04');
  await server.close();
  assert.deepEqual(parseRelayBody(Buffer.from(' OFF\n'), undefined), { state: 'off' });
  assert.equal((parseRelayBody(Buffer.from('on'), 42) as { code: string }).code, '4.15');
});

