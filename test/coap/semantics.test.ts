// The CoAP server's request semantics (issue #11 §7) over in-memory transports — RFC 8323 frames
// through a Duplex pair, RFC 7252 datagrams through a CoapUdpEndpoint: preconditions and ETags
// (4.12, 2.03), Accept (4.06) and Content-Format (4.15), proxy requests (5.05), NON with an unknown
// critical option (RST), RST to a NON notification, Block2 SZX 7 (4.00 unless BERT), Size1 on 4.13 and
// Max-Age on notifications.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codeString, createCoapServer, encodeBlock, decodeBlock, OPTION, type CoapServer, type CoapMessage } from '../../src/coap/index.js';
import { createPlugCoapServer, relayEtag, powerMaxAgeS } from '../../src/servers/coap/index.js';
import { createPlugState } from '../../src/servers/https/index.js';
import { duplexPair, RawClient, UdpPeer, tok, opt, path, text, optUint, optVal, until } from './helpers.js';

const GET = 1;
const POST = 2;
const PUT = 3;
const DELETE = 4;
const code = (m: CoapMessage): string => codeString(m.code);
const empty = new Uint8Array(0);

function connect(server: CoapServer, bert = false): RawClient {
  const [a, b] = duplexPair();
  server.handleStream(a);
  const c = new RawClient(b);
  c.csm(undefined, bert);
  return c;
}

/** A document store at /doc with a version ETag, declared so the server checks preconditions. */
function docServer(): { server: CoapServer; calls: () => number; doc: () => string | undefined } {
  let doc: string | undefined;
  let version = 0;
  let calls = 0;
  const etag = (): Uint8Array => Uint8Array.of(0xd0, version);
  const server = createCoapServer((req, res) => {
    calls++;
    if (req.method === 'GET') {
      if (doc === undefined) {
        res.code = '4.04';
        return void res.end();
      }
      res.setOption('ETag', etag());
      res.setOption('Max-Age', 30);
      res.setOption('Content-Format', 0);
      return void res.end(doc);
    }
    if (req.method === 'DELETE') {
      doc = undefined;
      return void res.end();
    }
    res.code = doc === undefined ? '2.01' : '2.04';
    doc = req.payload.toString('utf8');
    version++;
    res.setOption('ETag', etag());
    res.end();
  });
  server.resource('/doc', { methods: ['GET', 'PUT', 'DELETE'], produces: [0], consumes: { PUT: [0] }, etag: () => (doc === undefined ? null : etag()) });
  return { server, calls: () => calls, doc: () => doc };
}

test('If-None-Match / If-Match (RFC 7252 §5.10.8): a failed precondition → 4.12 and the handler does not run', async () => {
  const { server, calls, doc } = docServer();
  const c = connect(server);
  await c.next();
  const put = async (t: number, body: string, ...options: ReturnType<typeof opt>[]): Promise<CoapMessage> => {
    c.send({ code: PUT, token: tok(t), options: [...path('doc'), ...options], payload: Buffer.from(body) });
    return c.next((m) => m.token[0] === t);
  };
  // create only if absent: passes once, then fails
  assert.equal(code(await put(1, 'v1', opt(OPTION.IfNoneMatch, empty))), '2.01');
  let r = await put(2, 'v1bis', opt(OPTION.IfNoneMatch, empty));
  assert.equal(code(r), '4.12');
  assert.match(text(r), /If-None-Match failed/);
  assert.equal(doc(), 'v1');
  const n = calls();
  // If-Match with the current ETag → carried out; with the old one → 4.12
  const e1 = Uint8Array.of(0xd0, 1);
  r = await put(3, 'v2', opt(OPTION.IfMatch, e1));
  assert.equal(code(r), '2.04');
  assert.deepEqual([...optVal(r, OPTION.ETag)!], [0xd0, 2]);
  r = await put(4, 'v3', opt(OPTION.IfMatch, e1));
  assert.equal(code(r), '4.12');
  assert.match(text(r), /If-Match d001 failed: the current ETag is d002/);
  assert.equal(doc(), 'v2');
  // one of several If-Match values is enough; an empty If-Match means "any current representation"
  assert.equal(code(await put(5, 'v3', opt(OPTION.IfMatch, e1), opt(OPTION.IfMatch, Uint8Array.of(0xd0, 2)))), '2.04');
  assert.equal(code(await put(6, 'v4', opt(OPTION.IfMatch, empty))), '2.04');
  assert.equal(calls(), n + 3, 'the refused requests never reached the handler');
  // no current representation: If-Match (even empty) fails, If-None-Match passes
  c.send({ code: DELETE, token: tok(7), options: path('doc') });
  assert.equal(code(await c.next()), '2.02');
  assert.equal(code(await put(8, 'v5', opt(OPTION.IfMatch, empty))), '4.12');
  assert.equal(doc(), undefined);
  assert.equal(code(await put(9, 'v5', opt(OPTION.IfNoneMatch, empty))), '2.01');
  // a Block1 upload whose precondition fails is refused at its first block (no 2.31)
  c.send({ code: PUT, token: tok(10), options: [...path('doc'), opt(OPTION.IfMatch, e1), { number: OPTION.Block1, value: encodeBlock({ num: 0, more: true, szx: 0 }) }], payload: new Uint8Array(16) });
  assert.equal(code(await c.next((m) => m.token[0] === 10)), '4.12');
  await server.close();
});

test('ETag and 2.03 Valid (RFC 7252 §5.10.6.2, §5.9.1.3): a GET naming the current ETag gets 2.03 with ETag and Max-Age, no payload', async () => {
  const { server } = docServer();
  const c = connect(server);
  await c.next();
  c.send({ code: PUT, token: tok(1), options: path('doc'), payload: Buffer.from('hello') });
  const etag = optVal(await c.next(), OPTION.ETag)!;
  c.send({ code: GET, token: tok(2), options: [...path('doc'), opt(OPTION.ETag, Uint8Array.of(9, 9)), opt(OPTION.ETag, etag)] });
  const valid = await c.next();
  assert.equal(code(valid), '2.03');
  assert.deepEqual(optVal(valid, OPTION.ETag), etag);
  assert.equal(optUint(valid, OPTION.MaxAge), 30);
  assert.equal(optVal(valid, OPTION.ContentFormat), undefined);
  assert.equal(valid.payload.length, 0);
  c.send({ code: GET, token: tok(3), options: [...path('doc'), opt(OPTION.ETag, Uint8Array.of(9, 9))] });
  const full = await c.next();
  assert.equal(code(full), '2.05');
  assert.equal(text(full), 'hello');
  await server.close();
});

test('demo plug: /relay and /blob send ETags; a guarded PUT /relay that must fail gets 4.12 and the relay stays as it was', async () => {
  const state = createPlugState();
  const server = createPlugCoapServer(state);
  const c = connect(server);
  await c.next();
  c.send({ code: GET, token: tok(1), options: path('relay') });
  const r = await c.next();
  assert.deepEqual(optVal(r, OPTION.ETag), relayEtag(state));
  c.send({ code: PUT, token: tok(2), options: [...path('relay'), opt(OPTION.IfNoneMatch, empty)], payload: Buffer.from('on') });
  assert.equal(code(await c.next()), '4.12');
  assert.equal(state.relay, 'off');
  assert.equal(state.switches, 0);
  const old = relayEtag(state);
  c.send({ code: PUT, token: tok(3), options: [...path('relay'), opt(OPTION.IfMatch, old)], payload: Buffer.from('on') });
  const changed = await c.next();
  assert.equal(code(changed), '2.04');
  assert.equal(state.relay, 'on');
  assert.deepEqual(optVal(changed, OPTION.ETag), relayEtag(state));
  assert.notDeepEqual(relayEtag(state), old);
  c.send({ code: PUT, token: tok(4), options: [...path('relay'), opt(OPTION.IfMatch, old)], payload: Buffer.from('off') });
  assert.equal(code(await c.next()), '4.12');
  assert.equal(state.relay, 'on');
  c.send({ code: GET, token: tok(5), options: [...path('blob'), { number: OPTION.Block2, value: encodeBlock({ num: 0, more: false, szx: 6 }) }] });
  const b0 = await c.next();
  const blobTag = optVal(b0, OPTION.ETag);
  assert.equal(blobTag?.length, 8);
  c.send({ code: GET, token: tok(6), options: [...path('blob'), { number: OPTION.Block2, value: encodeBlock({ num: 5, more: false, szx: 6 }) }] });
  assert.deepEqual(optVal(await c.next(), OPTION.ETag), blobTag, 'every block carries the same ETag');
  await server.close();
});

test('Accept outside what a resource produces → 4.06; a Content-Format its method cannot take → 4.15; undeclared method → 4.05', async () => {
  const state = createPlugState();
  const server = createPlugCoapServer(state);
  const c = connect(server);
  await c.next();
  c.send({ code: GET, token: tok(1), options: [...path('status'), opt(OPTION.Accept, 60)] });
  let r = await c.next();
  assert.equal(code(r), '4.06');
  assert.match(text(r), /Accept 60/);
  c.send({ code: GET, token: tok(2), options: [...path('status'), opt(OPTION.Accept, 50)] });
  r = await c.next();
  assert.equal(code(r), '2.05');
  assert.equal(JSON.parse(text(r)).device, 'setls demo plug');
  c.send({ code: GET, token: tok(3), options: [...path('.well-known/core'), opt(OPTION.Accept, 50)] });
  assert.equal(code(await c.next()), '4.06');
  c.send({ code: PUT, token: tok(4), options: [...path('relay'), opt(OPTION.ContentFormat, 60)], payload: Buffer.from('on') });
  r = await c.next();
  assert.equal(code(r), '4.15');
  assert.equal(state.relay, 'off');
  c.send({ code: PUT, token: tok(5), options: [...path('relay'), opt(OPTION.ContentFormat, 0)], payload: Buffer.from('on') });
  assert.equal(code(await c.next()), '2.04');
  // 4.05 takes precedence over 4.06 (the request would fail anyway)
  c.send({ code: POST, token: tok(6), options: [...path('status'), opt(OPTION.Accept, 60)], payload: Buffer.from('x') });
  r = await c.next();
  assert.equal(code(r), '4.05');
  assert.match(text(r), /use GET/);
  await server.close();
});

test('Proxy-Uri or Proxy-Scheme → 5.05 (RFC 7252 §5.7.2), also with a Uri-Path, over TCP and UDP; the handler never runs', async () => {
  let calls = 0;
  const server = createCoapServer((_req, res) => {
    calls++;
    res.end('local');
  });
  const c = connect(server);
  await c.next();
  c.send({ code: GET, token: tok(1), options: [opt(OPTION.ProxyUri, 'coap://example.org/status')] });
  let r = await c.next();
  assert.equal(code(r), '5.05');
  c.send({ code: GET, token: tok(2), options: [...path('status'), opt(OPTION.ProxyScheme, 'coap')] });
  assert.equal(code(await c.next()), '5.05');
  c.send({ code: GET, token: tok(3), options: path('status') });
  assert.equal(text(await c.next()), 'local', 'positive control');
  const u = new UdpPeer(server);
  u.send({ type: 'CON', code: GET, token: tok(4), options: [...path('status'), opt(OPTION.ProxyScheme, 'coap')] });
  r = await u.next();
  assert.equal(r.type, 'ACK');
  assert.equal(code(r), '5.05');
  assert.equal(calls, 1);
  u.ep.close();
  await server.close();
});

test('UDP: a NON request with an unknown (or malformed) critical option is rejected with RST and not processed; a CON one gets 4.02 in the ACK', async () => {
  let calls = 0;
  const server = createCoapServer((_req, res) => {
    calls++;
    res.end('ok');
  });
  const u = new UdpPeer(server);
  const rejected: CoapMessage[] = [];
  u.ep.on('rejected', (m: CoapMessage) => rejected.push(m));
  const mid = u.send({ type: 'NON', code: GET, token: tok(1), options: [...path('x'), opt(2049, 'zz')] });
  const rst = await u.next();
  assert.equal(rst.type, 'RST');
  assert.equal(rst.messageId, mid);
  assert.equal(rst.code, 0);
  const mid2 = u.send({ type: 'NON', code: GET, token: tok(2), options: [opt(OPTION.UriHost, 'a'), opt(OPTION.UriHost, 'b'), ...path('x')] });
  assert.deepEqual(await u.next(), { ...rst, messageId: mid2 });
  assert.equal(rejected.length, 2);
  assert.equal(u.ep.processed, 0);
  const con = u.send({ type: 'CON', code: GET, token: tok(3), options: [...path('x'), opt(2049, 'zz')] });
  const ack = await u.next();
  assert.equal(ack.type, 'ACK');
  assert.equal(ack.messageId, con);
  assert.equal(code(ack), '4.02');
  assert.match(text(ack), /unknown critical option 2049/);
  u.send({ type: 'NON', code: GET, token: tok(4), options: [...path('x'), opt(2050, 'elective')] });
  const ok = await u.next();
  assert.equal(ok.type, 'NON');
  assert.equal(text(ok), 'ok');
  assert.equal(calls, 1);
  u.ep.close();
  await server.close();
});

test('UDP: a RST in answer to a NON notification ends the observation (RFC 7641 §3.6), as one to a CON notification does', async () => {
  const closed: string[] = [];
  const pushers = new Map<string, (s: string) => void>();
  const server = createCoapServer((req, res) => {
    if (!res.observe) return void res.end('plain');
    pushers.set(req.pathname, (s) => res.write(s));
    res.once('close', () => closed.push(req.pathname));
    res.write('v0');
  });
  const u = new UdpPeer(server, { conNotificationEvery: 1000 });
  // a NON registration: its first response and later notifications are NON
  u.send({ type: 'NON', code: GET, token: tok(1), options: [opt(OPTION.Observe, 0), ...path('a')] });
  u.send({ type: 'CON', code: GET, token: tok(2), options: [opt(OPTION.Observe, 0), ...path('b')] });
  const a0 = await u.next((m) => m.token[0] === 1);
  assert.equal(a0.type, 'NON');
  await u.next((m) => m.token[0] === 2);
  pushers.get('/a')!('v1');
  const a1 = await u.next((m) => m.token[0] === 1);
  assert.equal(a1.type, 'NON');
  assert.equal(optUint(a1, OPTION.Observe) !== undefined, true);
  // a RST with a message ID we never used changes nothing
  u.send({ type: 'RST', code: 0, messageId: (a1.messageId! + 1000) & 0xffff });
  // the client rejects the NON notification
  u.send({ type: 'RST', code: 0, messageId: a1.messageId! });
  await until(() => closed.includes('/a'));
  assert.deepEqual(closed, ['/a'], 'only the rejected observation ended');
  assert.equal(u.received.length, 0, 'nothing answered the RST');
  // the other observation goes on
  pushers.get('/b')!('w1');
  assert.equal(text(await u.next((m) => m.token[0] === 2)), 'w1');
  u.ep.close();
  // every notification CON: a RST to one ends its observation too
  const v = new UdpPeer(server, { conNotificationEvery: 1 });
  v.send({ type: 'NON', code: GET, token: tok(3), options: [opt(OPTION.Observe, 0), ...path('c')] });
  await v.next((m) => m.token[0] === 3);
  pushers.get('/c')!('x1');
  const c1 = await v.next((m) => m.token[0] === 3);
  assert.equal(c1.type, 'CON');
  v.send({ type: 'RST', code: 0, messageId: c1.messageId! });
  await until(() => closed.includes('/c'));
  assert.equal(v.ep.outstandingCount, 0);
  v.ep.close();
  await server.close();
});

test('Block2 SZX 7 is reserved (RFC 7959 §2.2): 4.00 over UDP and over TCP without BERT in both CSMs; BERT served when negotiated', async () => {
  const body = Buffer.alloc(5000, 0x61);
  const server = createCoapServer((_req, res) => void res.end(body));
  const szx7 = [...path('big'), { number: OPTION.Block2, value: encodeBlock({ num: 0, more: false, szx: 7 }) }];
  const u = new UdpPeer(server);
  u.send({ type: 'CON', code: GET, token: tok(1), options: szx7 });
  let r = await u.next();
  assert.equal(code(r), '4.00');
  assert.match(text(r), /SZX 7 is reserved/);
  u.send({ type: 'CON', code: GET, token: tok(2), options: [...path('big'), { number: OPTION.Block2, value: encodeBlock({ num: 0, more: false, szx: 6 }) }] });
  r = await u.next();
  assert.equal(code(r), '2.05');
  assert.equal(decodeBlock(optVal(r, OPTION.Block2)!).szx, 6);
  u.ep.close();
  const plain = connect(server, false);
  await plain.next();
  plain.send({ code: GET, token: tok(3), options: szx7 });
  assert.equal(code(await plain.next()), '4.00');
  const bert = connect(server, true);
  await bert.next();
  bert.send({ code: GET, token: tok(4), options: szx7 });
  r = await bert.next();
  assert.equal(code(r), '2.05');
  assert.equal(decodeBlock(optVal(r, OPTION.Block2)!).szx, 7);
  await server.close();
});

test('4.13 carries Size1 (RFC 7252 §5.9.2.9): a resource limit (whole body, announced Size1, assembled Block1) and a handler\'s own 4.13', async () => {
  const server = createCoapServer((req, res) => {
    if (req.pathname === '/own') {
      res.code = '4.13';
      return void res.end('too much for me');
    }
    res.end(`${req.payload.length}`);
  });
  // the demo's /relay takes 256 bytes
  const plug = createPlugCoapServer(createPlugState());
  const p = connect(plug);
  await p.next();
  p.send({ code: PUT, token: tok(6), options: path('relay'), payload: new Uint8Array(300).fill(0x6f) });
  let r = await p.next();
  assert.equal(code(r), '4.13');
  assert.equal(optUint(r, OPTION.Size1), 256);
  await plug.close();
  server.resource('/small', { maxBodySize: 40 });
  const c = connect(server);
  await c.next();
  c.send({ code: PUT, token: tok(1), options: path('small'), payload: new Uint8Array(41) });
  r = await c.next();
  assert.equal(code(r), '4.13');
  assert.equal(optUint(r, OPTION.Size1), 40);
  c.send({ code: PUT, token: tok(2), options: path('small'), payload: new Uint8Array(40) });
  assert.equal(text(await c.next()), '40');
  c.send({ code: PUT, token: tok(3), options: [...path('small'), opt(OPTION.Size1, 100), { number: OPTION.Block1, value: encodeBlock({ num: 0, more: true, szx: 0 }) }], payload: new Uint8Array(16) });
  r = await c.next();
  assert.equal(code(r), '4.13');
  assert.equal(optUint(r, OPTION.Size1), 40);
  for (let num = 0; num < 3; num++) {
    c.send({ code: PUT, token: tok(4), options: [...path('small'), { number: OPTION.Block1, value: encodeBlock({ num, more: true, szx: 0 }) }], payload: new Uint8Array(16) });
    r = await c.next();
  }
  assert.equal(code(r), '4.13');
  assert.equal(optUint(r, OPTION.Size1), 40);
  c.send({ code: PUT, token: tok(5), options: path('own'), payload: new Uint8Array(1) });
  r = await c.next();
  assert.equal(code(r), '4.13');
  assert.equal(optUint(r, OPTION.Size1), server.maxBodySize);
  await server.close();
});

test('/power notifications carry the Max-Age its GET carries (RFC 7641 §4.3.2), over TCP and UDP', async () => {
  const state = createPlugState();
  const server = createPlugCoapServer(state, { powerIntervalMs: 30 });
  const c = connect(server);
  await c.next();
  c.send({ code: GET, token: tok(1), options: path('power') });
  const maxAge = optUint(await c.next(), OPTION.MaxAge);
  assert.ok(maxAge !== undefined, 'GET /power carries a Max-Age');
  c.send({ code: GET, token: tok(2), options: [opt(OPTION.Observe, 0), ...path('power')] });
  for (let i = 0; i < 3; i++) {
    const n = await c.next((m) => m.token[0] === 2);
    assert.ok(optUint(n, OPTION.Observe) !== undefined);
    assert.equal(optUint(n, OPTION.MaxAge), maxAge, `notification ${i}`);
  }
  const u = new UdpPeer(server);
  u.send({ type: 'NON', code: GET, token: tok(3), options: [opt(OPTION.Observe, 0), ...path('power')] });
  for (let i = 0; i < 3; i++) assert.equal(optUint(await u.next(), OPTION.MaxAge), maxAge);
  u.ep.close();
  assert.equal(maxAge, powerMaxAgeS(30), 'fresh until the next notification is due');
  await server.close();
});

