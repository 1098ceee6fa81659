/**
 * Which identity answers once the operator has enrolled a slot on a card that already serves its own
 * identity (`setls card init`: local-CA certificate for localhost): the slot identity, for the same
 * SNI and without SNI — otherwise a relying party that trusts only the operator's CA would keep
 * getting the local-CA certificate after enrolment. Through `serve https` (its admin socket carries
 * the operator's SCP03 session) and Node's TLS client; the served leaf is compared byte for byte.
 */
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { makeTestCard, startTestHttps } from '../interop/helpers.js';
import { openCardForAdmin } from '../../src/cli/admin-access.js';
import { readManufacturerMaster, readSecurityDomain, withGetResponse } from '../../src/cli/manufacturer.js';
import { factoryKeySet } from '../../src/factory/index.js';
import { AdminClient, AdminRequest, Field, Fn, KeyAlg, parseFunctionResponse, req } from '../../src/gp/admin/index.js';
import { makeCa } from './isd/test-ca.js';
import { within } from '../wait.js';

/** The leaf the server on `port` presents (no verification: the test compares bytes). */
function servedLeaf(port: number, servername: string | undefined): Promise<Buffer> {
  return within(
    new Promise<Buffer>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(servername !== undefined ? { servername } : {}) });
      s.once('secureConnect', () => {
        const raw = s.getPeerCertificate().raw;
        s.destroy();
        resolve(raw);
      });
      s.once('error', reject);
    }),
    'a TLS handshake with the card',
  );
}

test("an enrolled slot identity answers before the card's own identity for the same name, and without SNI; locked, it is refused (access_denied) rather than replaced by the card's own", async () => {
  const card = await makeTestCard();
  const server = await startTestHttps(card);
  const opened = await openCardForAdmin({ cardDir: card.cardDir, quiet: true });
  try {
    const own = await servedLeaf(server.port, 'localhost');
    assert.match(new X509Certificate(own).subjectAltName ?? '', /DNS:localhost/, "the card's own identity serves localhost before enrolment");
    const transmit = withGetResponse((a) => opened.transport.transmit(a));
    const sd = await readSecurityDomain(transmit);
    const master = readManufacturerMaster(join(card.init.manufacturerDir, 'master.key'));
    const admin = new AdminClient(transmit);
    await admin.select();
    await admin.open(factoryKeySet(master, sd!.uid!));
    master.fill(0);
    try {
      const root = await makeCa('order test operator root');
      await admin.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [root.cert] }));
      const spki = req(parseFunctionResponse(Fn.generateIdentityKey, await admin.call(AdminRequest.generateIdentityKey({ slot: 1, algorithm: KeyAlg.p256 }))), Field.spki, 'spki');
      const leaf = await root.issueForSpki(spki, 'slot 1', { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
      await admin.call(AdminRequest.installCertificateChain({ slot: 1, certificates: [leaf, root.cert] }));
      await admin.call(AdminRequest.activateIdentity({ slot: 1 }));
      assert.deepEqual(new Uint8Array(await servedLeaf(server.port, 'localhost')), leaf, 'SNI localhost: the slot identity');
      assert.deepEqual(new Uint8Array(await servedLeaf(server.port, undefined)), leaf, 'no SNI: the slot identity');
      // a locked slot identity is refused; the card's own identity does not answer its names instead
      await admin.call(AdminRequest.lockIdentity({ slot: 1, lock: true }));
      for (const sni of ['localhost', undefined]) {
        await assert.rejects(servedLeaf(server.port, sni), (e: NodeJS.ErrnoException) => e.code === 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', `locked, SNI ${sni}`);
      }
      await admin.call(AdminRequest.lockIdentity({ slot: 1, lock: false }));
      assert.deepEqual(new Uint8Array(await servedLeaf(server.port, 'localhost')), leaf, 'unlocked: the slot identity again');
    } finally {
      admin.close();
    }
  } finally {
    await opened.close();
    await server.close();
    card.cleanup();
  }
});
