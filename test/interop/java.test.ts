// Java's JSSE (OpenJDK 17) against a setls HTTPS server: a single-file client
// (test/fixtures/java/Client.java; `java Client.java …` runs it as is) compiled once per run of this
// file with javac into a temp folder, then run per test. TLS 1.3 and TLS 1.2 with only the test CA
// trusted and the host name checked (endpoint identification HTTPS), one HTTP GET per connection,
// and resumption by reconnecting with the same SSLContext: the card's own /status says 'ticket'
// (JSSE gives a resumed TLS 1.3 session a new id, so the client side cannot tell; for TLS 1.2 the
// session id is the same too).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { makeTestCard, startTestHttps, run, type RunResult, type TestCard } from './helpers.js';
import { requirePeer } from './peers.js';
import type { RunningHttps } from '../../src/cli/serve.js';
import { openLocalCa } from '../../src/pki/local-ca.js';

const execFileP = promisify(execFile);
const SOURCE = fileURLToPath(new URL('../fixtures/java/Client.java', import.meta.url));

interface JavaLine {
  readonly conn: number;
  readonly version?: string;
  readonly cipher?: string;
  readonly sessionId?: string;
  readonly peer?: string;
  readonly status?: string;
  readonly body?: string;
  readonly error?: string;
}

interface Status {
  readonly device: string;
  readonly tls: { version: string; cipherSuite: string; resumption?: string };
}

// One javac per run of this file; each test then starts one JVM (C1 only: these runs are short).
const work = mkdtempSync(join(tmpdir(), 'setls-java-'));
let compiled: Promise<string> | undefined;
function javaClasses(): Promise<string> {
  compiled ??= (async () => {
    const t0 = performance.now();
    await execFileP('javac', ['-d', work, SOURCE], { timeout: 180_000 }).catch((e: Error & { stderr?: string }) => {
      throw new Error(`javac failed: ${e.stderr ?? e.message}`);
    });
    process.stderr.write(`# javac of the client: ${Math.round(performance.now() - t0)} ms\n`);
    return work;
  })();
  return compiled;
}
after(() => rmSync(work, { recursive: true, force: true }));

async function javaRun(port: number, ca: string, version: string, n: number): Promise<{ run: RunResult; lines: JavaLine[] }> {
  const cp = await javaClasses();
  const r = await run('java', ['-XX:TieredStopAtLevel=1', '-cp', cp, 'Client', String(port), ca, version, '/status', String(n)], { timeoutMs: 90_000 });
  const lines = r.stdout
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as JavaLine);
  return { run: r, lines };
}

function status(l: JavaLine): Status {
  assert.equal(l.error, undefined, l.error);
  assert.equal(l.status, 'HTTP/1.1 200 OK');
  return JSON.parse(l.body!) as Status;
}

describe("Java's JSSE (OpenJDK 17)", () => {
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

  const cases = [
    { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' },
    { version: 'TLSv1.2', cipher: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256' },
  ];
  for (const c of cases) {
    test(`${c.version}: only the test CA trusted, host name checked, GET /status; a reconnect with the same SSLContext resumes from a ticket`, async (t) => {
      if (!requirePeer(t, 'java') || !requirePeer(t, 'javac')) return;
      const { run: r, lines } = await javaRun(server.port, card.init.caCertPath, c.version, 2);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(lines.length, 2);
      const [full, again] = lines as [JavaLine, JavaLine];
      assert.deepEqual([full.version, full.cipher, full.peer], [c.version, c.cipher, 'CN=localhost']);
      const s0 = status(full);
      assert.deepEqual([s0.device, s0.tls.version, s0.tls.resumption], ['setls demo plug', c.version, 'full']);
      assert.equal(again.version, c.version);
      assert.equal(status(again).tls.resumption, 'ticket', 'the card resumed the session');
      if (c.version === 'TLSv1.2') assert.equal(again.sessionId, full.sessionId, 'JSSE reused its TLS 1.2 session');
    });
  }

  test('the certificate is really checked: trusting another CA, JSSE refuses the server', async (t) => {
    if (!requirePeer(t, 'java') || !requirePeer(t, 'javac')) return;
    const other = await openLocalCa(join(card.root, 'other-ca'), 'not the card CA');
    const otherPem = join(card.root, 'other-ca.pem');
    writeFileSync(otherPem, other.certificate.toString('pem'));
    const { run: r, lines } = await javaRun(server.port, otherPem, 'TLSv1.3', 1);
    assert.equal(r.code, 1);
    assert.match(lines[0]?.error ?? '', /PKIX path building failed|unable to find valid certification path/);
  });
});
