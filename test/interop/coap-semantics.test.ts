/**
 * libcoap's coap-client-openssl against the demo plug's request semantics (issue #11 §7), over
 * coap:// (RFC 7252 messaging) and coap+tcp:// (RFC 8323) on plain loopback sockets: the same
 * request layer serves coaps:// and coaps+tcp:// through the card (coap-dtls / coap-tls tests
 * repeat a few of these there). libcoap exits 0 whatever the answer: its stderr line with the
 * response code, and at -v 7 its dump of every PDU ("v:1 t:ACK c:4.13 … [ Size1:256 ]"), are read.
 *   - If-None-Match / If-Match on PUT /relay → 4.12 and the relay untouched; ETag sent, 2.03 Valid
 *   - Accept (-A) outside what a resource produces → 4.06; a Content-Format (-t) PUT /relay cannot take → 4.15
 *   - a proxy request (-P: Proxy-Uri) → 5.05
 *   - a NON with an unknown critical option → RST (a CON one → 4.02 in the ACK)
 *   - libcoap's RST to a NON notification it has no observation for ends that observation
 *   - Block2 SZX 7 over UDP → 4.00; BERT over TCP still works
 *   - a too-large PUT → 4.13 with Size1; notifications carry the GET's Max-Age
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePeer } from './peers.js';
import { run, type RunResult } from './helpers.js';
import { servePlainCoap, type PlainCoap } from './coap-plain.js';
import { BLOB_SHA256, dataOf } from './coap-output.js';
import { startRelay } from '../host/dtls-relay.js';
import { createPlugCoapServer, powerMaxAgeS, relayEtag } from '../../src/servers/coap/index.js';
import { createPlugState, type PlugState } from '../../src/servers/https/index.js';
import { decodeUdp, encodeUdp, type CoapServer } from '../../src/coap/index.js';

const CLIENT = 'coap-client-openssl';
const POWER_INTERVAL_MS = 300;
let state: PlugState;
let coap: CoapServer;
let plain: PlainCoap;
let dir: string;

before(async () => {
  state = createPlugState();
  coap = createPlugCoapServer(state, { powerIntervalMs: POWER_INTERVAL_MS });
  plain = await servePlainCoap(coap);
  dir = mkdtempSync(join(tmpdir(), 'setls-coap-sem-'));
});

after(async () => {
  await coap?.close();
  await plain?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const SCHEMES = [
  ['coap', () => plain.udpUrl],
  ['coap+tcp', () => plain.tcpUrl],
] as const;

function client(args: readonly string[], timeoutMs = 20_000): Promise<RunResult> {
  return run(CLIENT, ['-B', '5', ...args], { timeoutMs });
}

interface Pdu {
  readonly type: string;
  readonly code: string;
  readonly options: string;
  readonly payload: string | undefined;
}

/** The responses libcoap dumped at -v 7 (one line per PDU, sent ones have a method code). */
function responses(r: RunResult): Pdu[] {
  const out: Pdu[] = [];
  for (const line of (r.stdout + '\n' + r.stderr).split('\n')) {
    const m = /^v:1 t:(\w+) c:(\d\.\d\d) i:[0-9a-f]+ \{[0-9a-f]*\} \[(.*?)\](?: :: (.*))?$/.exec(line.trim());
    if (m) out.push({ type: m[1]!, code: m[2]!, options: m[3]!, payload: m[4] });
  }
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const both = (r: RunResult): string => `${r.stdout}\n${r.stderr}`;

for (const [scheme, base] of SCHEMES) {
  test(`${scheme}: If-None-Match / If-Match on PUT /relay → 4.12 and the relay untouched; ETag sent; 2.03 Valid`, async (t) => {
    if (!requirePeer(t, CLIENT)) return;
    state.relay = 'off';
    const switches = state.switches;
    // If-None-Match (option 5, empty): "only if there is no current representation" — /relay has one
    const guarded = await client(['-m', 'put', '-O', '5', '-e', 'on', `${base()}/relay`]);
    assert.match(guarded.stderr, /^4\.12 If-None-Match failed/m, both(guarded));
    assert.equal(state.relay, 'off', 'the guarded PUT was not carried out');
    assert.equal(state.switches, switches);
    // the ETag of the current representation comes with GET
    const before = relayEtag(state);
    const get = responses(await client(['-v', '7', `${base()}/relay`]));
    assert.ok(get.some((p) => p.code === '2.05' && p.options.includes(`ETag:0x${hex(before)}`)), JSON.stringify(get));
    // If-Match with it: carried out (positive control), the answer has the new ETag
    const put = await client(['-v', '7', '-m', 'put', '-O', `1,0x${hex(before)}`, '-e', 'on', `${base()}/relay`]);
    assert.equal(state.relay, 'on', both(put));
    assert.ok(responses(put).some((p) => p.code === '2.04' && p.options.includes(`ETag:0x${hex(relayEtag(state))}`)), both(put));
    // If-Match with the tag that is no longer current → 4.12, not carried out
    const stale = await client(['-m', 'put', '-O', `1,0x${hex(before)}`, '-e', 'off', `${base()}/relay`]);
    assert.match(stale.stderr, /^4\.12 If-Match/m, both(stale));
    assert.equal(state.relay, 'on');
    // GET with the current ETag (RFC 7252 §5.10.6.2) → 2.03 Valid with that ETag and no payload
    const valid = responses(await client(['-v', '7', '-O', `4,0x${hex(relayEtag(state))}`, `${base()}/relay`]));
    const v = valid.find((p) => p.code === '2.03');
    assert.ok(v && v.options.includes(`ETag:0x${hex(relayEtag(state))}`) && v.payload === undefined, JSON.stringify(valid));
    state.relay = 'off';
  });

  test(`${scheme}: Accept (-A 60) on /status → 4.06, -A 50 → JSON; PUT /relay with -t 60 → 4.15`, async (t) => {
    if (!requirePeer(t, CLIENT)) return;
    const cbor = await client(['-A', '60', `${base()}/status`]);
    assert.match(cbor.stderr, /^4\.06 Accept 60/m, both(cbor));
    assert.doesNotMatch(cbor.stdout, /setls demo plug/);
    const json = await client(['-A', '50', `${base()}/status`]);
    assert.equal(JSON.parse(dataOf(json.stdout).trim()).device, 'setls demo plug', both(json));
    state.relay = 'off';
    const wrong = await client(['-m', 'put', '-t', '60', '-e', 'on', `${base()}/relay`]);
    assert.match(wrong.stderr, /^4\.15 /m, both(wrong));
    assert.equal(state.relay, 'off');
    const right = await client(['-m', 'put', '-t', '50', '-e', '{"state":"on"}', `${base()}/relay`]);
    assert.equal(dataOf(right.stdout).trim(), 'on', both(right));
    assert.equal(state.relay, 'on');
    state.relay = 'off';
  });

  test(`${scheme}: a request through us as a proxy (-P: Proxy-Uri) → 5.05 Proxying Not Supported`, async (t) => {
    if (!requirePeer(t, CLIENT)) return;
    const direct = await client([`${base()}/status`]);
    assert.equal(JSON.parse(dataOf(direct.stdout).trim()).device, 'setls demo plug', both(direct));
    const proxied = await client(['-P', base(), 'coap://example.org/status']);
    assert.match(proxied.stderr, /^5\.05 proxying not supported/m, both(proxied));
    assert.doesNotMatch(proxied.stdout, /setls demo plug/);
  });

  test(`${scheme}: a PUT above /relay's 256 bytes → 4.13 with Size1 256, the relay untouched`, async (t) => {
    if (!requirePeer(t, CLIENT)) return;
    state.relay = 'off';
    const big = await client(['-v', '7', '-m', 'put', '-e', 'o'.repeat(300), `${base()}/relay`]);
    const r = responses(big).find((p) => p.code === '4.13');
    assert.ok(r, both(big));
    assert.match(r.options, /Size1:256\b/);
    assert.equal(state.relay, 'off');
  });

  test(`${scheme}: /power notifications carry the Max-Age its GET carries`, async (t) => {
    if (!requirePeer(t, CLIENT)) return;
    const get = responses(await client(['-v', '7', `${base()}/power`]));
    const maxAge = /Max-Age:\d+/.exec(get.find((p) => p.code === '2.05')?.options ?? '')?.[0];
    assert.ok(maxAge, `GET /power carries no Max-Age: ${JSON.stringify(get)}`);
    const obs = responses(await client(['-v', '7', '-s', '2', `${base()}/power`]));
    const notifications = obs.filter((p) => p.code === '2.05' && /Observe:\d+/.test(p.options));
    assert.ok(notifications.length >= 3, JSON.stringify(obs));
    for (const n of notifications) assert.ok(n.options.includes(maxAge), `notification without ${maxAge}: ${n.options}`);
    assert.equal(maxAge, `Max-Age:${powerMaxAgeS(POWER_INTERVAL_MS)}`, 'fresh until the next notification is due');
  });
}

test('coap: a NON request with an unknown critical option is rejected with RST; a CON one gets 4.02 in the ACK', async (t) => {
  if (!requirePeer(t, CLIENT)) return;
  const nonOk = await client(['-N', `${plain.udpUrl}/status`]);
  assert.equal(JSON.parse(dataOf(nonOk.stdout).trim()).device, 'setls demo plug', both(nonOk));
  let handled = 0;
  const count = (): void => void handled++;
  coap.on('request', count);
  try {
    const non = await client(['-N', '-O', '2049,zz', `${plain.udpUrl}/status`]);
    assert.match(non.stderr, /got RST for mid=/, both(non));
    assert.doesNotMatch(both(non), /4\.02/);
    assert.equal(handled, 0, 'the rejected NON never reached the resource');
    const con = responses(await client(['-v', '7', '-O', '2049,zz', `${plain.udpUrl}/status`]));
    const bad = con.find((p) => p.code === '4.02');
    assert.ok(bad && bad.type === 'ACK' && /unknown critical option 2049/.test(bad.payload ?? ''), JSON.stringify(con));
  } finally {
    coap.off('request', count);
  }
});

test('coap: libcoap answers a NON notification it has no observation for with RST, and that observation ends (RFC 7641 §3.6)', async (t) => {
  if (!requirePeer(t, CLIENT)) return;
  // A relay in front of the server adds, after the client's first request, a NON registration of
  // its own (token BEEF) as if the client had sent it: its notifications reach coap-client, which
  // has no such token and rejects them with RST.
  const foreign = Uint8Array.of(0xbe, 0xef);
  let injected = false;
  const relay = await startRelay(Number(new URL(plain.udpUrl).port), (d) => {
    if (d === 'up' && !injected) {
      injected = true;
      const reg = encodeUdp({ type: 'NON', messageId: 0x4242, code: 1, token: foreign, options: [{ number: 6, value: new Uint8Array(0) }, { number: 11, value: new TextEncoder().encode('power') }], payload: new Uint8Array(0) });
      setImmediate(() => relay.inject(reg));
    }
    return 'pass';
  });
  const seen = (): { dir: string; type: string; token: string; i: number }[] =>
    relay.log.map((l, i) => {
      const m = decodeUdp(new Uint8Array(l.datagram));
      return { dir: l.dir, type: m.type ?? 'CON', token: hex(m.token), i };
    });
  try {
    const r = await client(['-s', '4', `coap://127.0.0.1:${relay.port}/power`], 30_000);
    const log = seen();
    const rst = log.find((l) => l.dir === 'up' && l.type === 'RST');
    assert.ok(rst, `coap-client sent no RST: ${JSON.stringify(log)}\n${both(r)}`);
    const foreignDown = log.filter((l) => l.dir === 'down' && l.token === hex(foreign));
    assert.ok(foreignDown.length >= 1 && foreignDown[0]!.i < rst.i, 'the RST answered a BEEF notification');
    // the client's own observation went on for seconds after the RST: had BEEF still been observed,
    // its notifications (every 300 ms) would be among these
    const ownAfter = log.filter((l) => l.dir === 'down' && l.i > rst.i && l.token !== hex(foreign));
    assert.ok(ownAfter.length >= 5, `only ${ownAfter.length} notifications of the client's own observation after the RST`);
    assert.deepEqual(foreignDown.filter((l) => l.i > rst.i), [], 'no BEEF notification after the RST');
  } finally {
    await relay.close();
  }
});

test('coap: Block2 SZX 7 over UDP → 4.00 (RFC 7959 §2.2), SZX 6 served; coap+tcp: BERT (SZX 7) still works', async (t) => {
  if (!requirePeer(t, CLIENT)) return;
  const six = await client(['-O', '23,0x06', `${plain.udpUrl}/status`]);
  assert.equal(JSON.parse(dataOf(six.stdout).trim()).device, 'setls demo plug', both(six));
  const seven = await client(['-O', '23,0x07', `${plain.udpUrl}/status`]);
  assert.match(seven.stderr, /^4\.00 Block2 SZX 7 is reserved/m, both(seven));
  assert.doesNotMatch(seven.stdout, /setls demo plug/);
  const out = join(dir, 'blob-bert.bin');
  if (existsSync(out)) rmSync(out);
  const bert = await client(['-v', '7', '-O', '23,0x07', '-o', out, `${plain.tcpUrl}/blob`], 30_000);
  assert.ok(responses(bert).some((p) => p.code === '2.05' && /Block2:0\/\S+\/BERT/.test(p.options)), both(bert));
  assert.ok(existsSync(out), both(bert));
  assert.equal(createHash('sha256').update(readFileSync(out)).digest('hex'), BLOB_SHA256);
});
