/**
 * `setls operator est-credential …` and `setls operator est-certificate …` as a user runs them
 * (bin/setls.mjs in a child process) against a running operator: create prints a username and a
 * password once, curl enrols with them, list shows the credential (never the password) and the
 * certificate, revoke of the credential stops it, revoke of the certificate puts it in the CRL.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initOperator } from '../../src/operator/init.js';
import { startOperator } from '../../src/operator/service.js';
import { requirePeer } from '../interop/peers.js';
import { tempDir } from './helpers.js';

const BIN = join(process.cwd(), 'bin/setls.mjs');
const run = promisify(execFile);

test('est-credential create / list / revoke and est-certificate list / revoke through the CLI, used by curl', async (t) => {
  if (!requirePeer(t, 'curl') || !requirePeer(t, 'openssl')) return;
  const tmp = tempDir('setls-estcli-');
  const dir = join(tmp.dir, 'op');
  await initOperator({ dir });
  const svc = await startOperator({ dir, port: 0, quiet: true, writeServeInfo: false, runJobs: false });
  try {
    const cli = async (...args: string[]): Promise<string> => (await run(process.execPath, [BIN, 'operator', ...args, '--dir', dir, '--url', svc.url], { encoding: 'utf8', timeout: 120_000 })).stdout;
    const created = await cli('est-credential', 'create', '--name', 'build-farm', '--uses', '3', '--expires', '2d', '--dns', '*.ci.example', '--days', '10');
    const user = /^username: (estc-[0-9a-f]{16})$/m.exec(created)?.[1];
    const password = /^password: ([A-Za-z0-9_-]{43})$/m.exec(created)?.[1];
    assert.ok(user && password, created);

    const key = join(tmp.dir, 'k.pem');
    const csr = join(tmp.dir, 'csr.der');
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/CN=runner1.ci.example', '-outform', 'DER', '-out', csr], { stdio: 'pipe' });
    const b64 = join(tmp.dir, 'csr.b64');
    writeFileSync(b64, readFileSync(csr).toString('base64'));
    const enrol = (): Promise<{ stdout: string }> =>
      run('curl', ['-sS', '--cacert', join(dir, 'tls-ca.crt'), '--user', `${user}:${password}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${b64}`, '-w', '\n%{http_code}', `${svc.url}/.well-known/est/simpleenroll`], { encoding: 'utf8', timeout: 30_000 });
    const ok = await enrol();
    assert.match(ok.stdout, /\n200$/, ok.stdout);

    const creds = await cli('est-credential', 'list');
    assert.match(creds, new RegExp(`${user}\\s+build-farm\\s+2\\s`), creds);
    assert.ok(!creds.includes(password!), 'the password is never listed');
    const json = JSON.parse(await cli('est-certificate', 'list', '--json'));
    assert.equal(json.items.length, 1);
    const serial: string = json.items[0].serial;
    assert.equal(json.items[0].subject, 'CN=runner1.ci.example');
    assert.equal(Date.parse(json.items[0].notAfter) - Date.parse(json.items[0].notBefore), 10 * 86_400_000 + 5 * 60_000, 'the profile days (+ the 5-minute backdate)');

    assert.match(await cli('est-credential', 'revoke', user!), /revoked/);
    const refused = await enrol();
    assert.match(refused.stdout, /^ERR_OP_EST_CREDENTIAL: [^\n]*revoked\n\n401$/, refused.stdout);

    assert.match(await cli('est-certificate', 'revoke', serial, '--reason', 'keyCompromise'), /revoked \(keyCompromise\); CRL number \d+ published/);
    const shown = JSON.parse(await cli('est-certificate', 'show', serial, '--json'));
    assert.equal(shown.certificate.status, 'revoked');
    assert.match(shown.certificate.pem, /^-----BEGIN CERTIFICATE-----/);
  } finally {
    await svc.stop();
    tmp.cleanup();
  }
});
