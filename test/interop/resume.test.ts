// Resumption proven, not assumed: openssl s_client -sess_out / -sess_in prints "Reused" for TLS 1.3
// tickets, TLS 1.2 tickets and (with -no_ticket) TLS 1.2 session IDs, and the card's own view
// (/status tls.resumption) agrees; a TLS 1.3 ticket still resumes after the setls server process
// closed and reopened the card (only the ticket key persists, sealed in the card); Node's
// isSessionReused() is true.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import tls from 'node:tls';
import { makeTestCard, startTestHttps, run, statusBodies, httpGet, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import type { RunningHttps } from '../../src/cli/serve.js';

interface StatusR {
  readonly tls: { version: string; resumption?: string };
}

describe('resumption', () => {
  let card: TestCard;
  let server: RunningHttps;
  before(async () => {
    card = await makeTestCard();
    server = await startTestHttps(card);
  });
  after(async () => {
    await server?.close();
    card?.cleanup();
  });

  function sClient(extra: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return run(
      'openssl',
      ['s_client', '-CAfile', card.init.caCertPath, '-connect', `127.0.0.1:${server.port}`, '-servername', 'localhost', '-verify_return_error', '-ign_eof', ...extra],
      { input: httpGet('/status') },
    );
  }

  const cases = [
    { name: 'TLS 1.3 ticket', args: ['-tls1_3'], version: '1\\.3', resumption: 'ticket' },
    { name: 'TLS 1.2 ticket', args: ['-tls1_2'], version: '1\\.2', resumption: 'ticket' },
    { name: 'TLS 1.2 session ID (-no_ticket)', args: ['-tls1_2', '-no_ticket'], version: '1\\.2', resumption: 'session-id' },
  ];
  for (const c of cases) {
    test(`openssl -sess_out then -sess_in: Reused (${c.name})`, async (t) => {
      if (!requirePeer(t, 'openssl')) return;
      const f = join(card.root, `sess-${c.resumption}-${c.args.length}.pem`);
      const full = await sClient([...c.args, '-sess_out', f]);
      assert.equal(full.code, 0, full.stderr);
      assert.match(full.stdout, new RegExp(`New, TLSv${c.version}`));
      assert.equal((statusBodies(full.stdout)[0] as unknown as StatusR).tls.resumption, 'full');
      const again = await sClient([...c.args, '-sess_in', f]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`Reused, TLSv${c.version}`));
      assert.match(again.stdout, /HTTP\/1\.1 200 OK/);
      assert.equal((statusBodies(again.stdout)[0] as unknown as StatusR).tls.resumption, c.resumption);
    });
  }

  test('a TLS 1.3 ticket resumes after the setls server process reopened the card', async (t) => {
    if (!requirePeer(t, 'openssl')) return;
    const f = join(card.root, 'sess-restart.pem');
    const full = await sClient(['-tls1_3', '-sess_out', f]);
    assert.match(full.stdout, /New, TLSv1\.3/);
    await server.close();
    server = await startTestHttps(card);
    const again = await sClient(['-tls1_3', '-sess_in', f]);
    assert.match(again.stdout, /Reused, TLSv1\.3/);
    assert.equal((statusBodies(again.stdout)[0] as unknown as StatusR).tls.resumption, 'ticket');
  });

  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    test(`Node tls session reuse (${maxVersion}): isSessionReused() is true`, async () => {
      const once = (session?: Buffer): Promise<{ reused: boolean; session: Buffer | undefined; body: string }> =>
        new Promise((resolve, reject) => {
          let got: Buffer | undefined;
          let body = '';
          const s = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: card.ca, maxVersion, ...(session ? { session } : {}) });
          s.on('session', (b: Buffer) => (got = b));
          s.on('secureConnect', () => s.write(httpGet('/status')));
          s.on('data', (d: Buffer) => (body += d.toString()));
          s.on('error', reject);
          s.on('end', () => resolve({ reused: s.isSessionReused(), session: got, body }));
        });
      const first = await once();
      assert.equal(first.reused, false);
      assert.ok(first.session, 'no session/ticket received');
      const second = await once(first.session);
      assert.equal(second.reused, true);
      assert.equal((statusBodies(second.body)[0] as unknown as StatusR).tls.resumption, 'ticket');
    });
  }
});
