/**
 * The agent against operators that misbehave (a hand-made HTTPS server): a script body it cannot
 * read is answered script-format-error on its Next-URI; a Next-URI to another place, or an answer
 * that is not the relay protocol, is never followed (the bearer token goes nowhere else); failed
 * polls back off exponentially with jitter (the delays the agent logs, with fixed randomness);
 * Retry-After is honoured. And the CLI refuses a card without a security domain and no --card-uid.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DeviceAgent } from '../../src/agent/index.js';
import { RELAY_PROTOCOL } from '../../src/relay/index.js';
import { startAgent } from '../../src/cli/agent.js';
import { FakeCard, SD_AID } from './fake-card.js';
import { makePki, startOperator, type TestPki } from './operator-fixture.js';
import { waitUntil } from '../wait.js';

let pki: TestPki;
before(async () => {
  pki = await makePki();
});

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

async function fakeOperator(answer: (req: Seen, res: ServerResponse, n: number) => void): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = https.createServer({ cert: pki.certPem, key: pki.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
      seen.push(s);
      answer(s, res, seen.length);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `https://localhost:${(server.address() as AddressInfo).port}`,
    seen,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const agents: DeviceAgent[] = [];
after(async () => {
  for (const a of agents) await a.stop();
});

async function agentOn(url: string, lines: string[], extra: Partial<Parameters<typeof DeviceAgent.start>[0]> = {}): Promise<DeviceAgent> {
  const a = await DeviceAgent.start({ operatorUrl: url, ca: pki.caPem, token: 'tok', hostId: 'h1', cards: [{ transport: new FakeCard().transport() }], log: (l) => lines.push(l), ...extra });
  agents.push(a);
  return a;
}

const TOKEN = 'T'.repeat(43);
const scriptHeaders = (next: string): Record<string, string> => ({
  'x-admin-protocol': RELAY_PROTOCOL,
  'content-type': 'application/json',
  'x-admin-next-uri': next,
  'x-admin-targeted-se': '//se-id/CUD/A0A1A2A3A4A5A6A7A8A9AAABACADAEAF',
  'x-admin-targeted-application': '//aid/A000000151/000000',
});
const idle = (res: ServerResponse, retryAfter = '0'): void => {
  res.writeHead(204, { 'x-admin-protocol': RELAY_PROTOCOL, 'retry-after': retryAfter });
  res.end();
};

test('a script body the agent cannot read is answered script-format-error on its Next-URI (not retried forever)', async () => {
  const op = await fakeOperator((req, res, n) => {
    if (n === 1) {
      res.writeHead(200, scriptHeaders(`/admin/v1/s/${TOKEN}`));
      res.end('{"delay":0,"ramCommands":[{"ramCommandType":"seRamCommand","listOfCAPDU":["80CA9F"]}]}');
    } else if (req.url === `/admin/v1/s/${TOKEN}`) {
      res.writeHead(204, { 'x-admin-protocol': RELAY_PROTOCOL });
      res.end();
    } else idle(res, '1');
  });
  const lines: string[] = [];
  await agentOn(op.url, lines);
  await waitUntil(() => op.seen.some((s) => s.url.startsWith('/admin/v1/s/')), 'the agent answers on the Next-URI');
  const post = op.seen.find((s) => s.url.startsWith('/admin/v1/s/'))!;
  assert.equal(post.headers['x-admin-script-status'], 'script-format-error');
  assert.equal(post.body, '{"listOfRAPDU":[]}');
  assert.equal(post.headers.authorization, 'Bearer tok');
  await op.close();
});

test('a Next-URI elsewhere, or an answer without X-Admin-Protocol, is never followed', async () => {
  for (const next of ['https://evil.example/admin/v1/s/' + TOKEN, '//evil.example/admin/v1/s/' + TOKEN, '/elsewhere/' + TOKEN]) {
    const op = await fakeOperator((_req, res, n) => {
      if (n === 1) {
        res.writeHead(200, scriptHeaders(next));
        res.end('{"delay":0,"ramCommands":[{"ramCommandType":"seRamCommand","listOfCAPDU":["80CA9F7F00"]}]}');
      } else idle(res, '1');
    });
    const lines: string[] = [];
    const a = await agentOn(op.url, lines, { backoffInitialMs: 20, backoffMaxMs: 40 });
    await waitUntil(() => a.stats.pollErrors >= 1 && op.seen.length >= 2, 'the agent treats it as a failed poll and polls again');
    assert.ok(op.seen.every((s) => s.url === '/admin/v1/poll'), `only polls: ${op.seen.map((s) => s.url).join(', ')}`);
    assert.ok(lines.some((l) => /ERR_RELAY_HEADER: X-Admin-Next-URI/.test(l)), lines.join('\n'));
    await a.stop();
    await op.close();
  }
  const op = await fakeOperator((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html>a captive portal</html>');
  });
  const lines: string[] = [];
  const a = await agentOn(op.url, lines, { backoffInitialMs: 20, backoffMaxMs: 40 });
  await waitUntil(() => a.stats.pollErrors >= 2, 'failed polls');
  assert.ok(lines.some((l) => /not the operator's relay endpoint/.test(l)));
  await a.stop();
  await op.close();
});

test('failed polls back off exponentially with jitter up to the maximum; polls succeed again once the operator is back', async () => {
  let fail = true;
  const op = await fakeOperator((_req, res) => {
    if (fail) {
      res.writeHead(503, { 'x-admin-protocol': RELAY_PROTOCOL, 'content-type': 'application/json' });
      res.end('{"error":{"code":"ERR_RELAY_UNAVAILABLE","message":"busy"}}');
    } else idle(res, '0');
  });
  const lines: string[] = [];
  const a = await agentOn(op.url, lines, { backoffInitialMs: 40, backoffMaxMs: 200, random: () => 0 });
  await waitUntil(() => a.stats.pollErrors >= 5, 'five failed polls');
  const waits = lines.filter((l) => /poll failed/.test(l)).slice(0, 5).map((l) => Number(/next try in (\d+) ms/.exec(l)![1]));
  // random() = 0: half of min(max, initial·2^(n-1))
  assert.deepEqual(waits, [20, 40, 80, 100, 100]);
  assert.ok(lines.some((l) => /ERR_RELAY_UNAVAILABLE: busy/.test(l)));
  fail = false;
  await waitUntil(() => op.seen.length >= a.stats.pollErrors + 3, 'polls succeed again');
  await a.stop();
  await op.close();
});

test('Retry-After is honoured between polls (the agent waits; a long value is cut short by stop)', async () => {
  const slow = await fakeOperator((_req, res) => idle(res, '3600'));
  const fast = await fakeOperator((_req, res) => idle(res, '0'));
  const a = await agentOn(slow.url, []);
  const b = await agentOn(fast.url, []);
  // Side by side: while the Retry-After: 0 agent polls again and again, the 3600 one waits.
  await waitUntil(() => fast.seen.length >= 20, 'the Retry-After: 0 agent polls repeatedly');
  assert.equal(slow.seen.length, 1, 'no second poll while Retry-After runs');
  await a.stop(); // does not wait an hour
  await b.stop();
  await slow.close();
  await fast.close();
});

test('the CLI refuses a card without a security domain unless --card-uid names it', async () => {
  const op = await startOperator(pki);
  const card = new FakeCard();
  card.applets.delete(SD_AID);
  await assert.rejects(startAgent([card.transport()], { operator: op.url }, () => undefined), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'ERR_AGENT_NO_ISD');
    assert.match(e.message, /--card-uid/);
    return true;
  });
  assert.deepEqual(card.openChannels, [0], 'the agent let its channel go');
  const ok = await startAgent([card.transport()], { operator: op.url, cardUid: '00112233445566778899AABBCCDDEEFF' }, () => undefined);
  assert.equal(ok.cards[0]!.uidHex, '00112233445566778899AABBCCDDEEFF');
  await ok.stop();
  await op.close();
});
