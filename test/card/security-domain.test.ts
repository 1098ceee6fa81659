/**
 * The security domain inside the real card (EmulatedCard, its card OS and sealed store), and what
 * its decisions do to the TLS applets: a TLS handshake from Node's TLS client through TlsTandem on
 * channel 0 while an SCP03 session runs on channel 1 (admin commands between every handshake APDU);
 * a locked identity refused with access_denied at the next handshake; the operator's client CAs and
 * deny-list (certificate_revoked); applet and card locks (SELECT 6283, commands 6985); termination;
 * the time anchor as a hard floor; TLS sessions in the signed audit log, written without a write on
 * the handshake path; trust changes that drop the ticket key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { concat, encodeBerTlv, fromHex, parseBerTlvs, toHex } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { AdminClient, AdminRequest, AuditEvent, CardLifecycle, GetDataTag, LOCKED_IDENTITY_ALERT, parseAuditEntry, parseAuditLogResponse, signTimeAnchor, verifyAuditPage } from '../../src/gp/admin/index.js';
import { APPLET_AID, TLS_SE_AID } from '../../src/protocol/index.js';
import { TlsTandem, type SeTlsSocket } from '../../src/host/index.js';
import { InProcessTransport } from '../../src/transport/index.js';
import { SealedStore } from '../../src/card/os/sealed-store.js';
import { deserializeState, serializeState } from '../../src/card/state.js';
import { a0, cmd, eapResponse, pad, utf8, xcv } from './helpers.js';
import { adminOn, enrolSlot, follow, OPERATOR_PIN, sealedEmulatedCard, SyncAdmin, USER_PIN, type SealedCard } from './sd-helpers.js';
import { within } from '../wait.js';

const AUDIT_LABEL = 'EXPORTER-setls-audit-session';
const rootPem = (c: SealedCard): string => new X509Certificate(c.ca.operatorRoot.cert).toString();
const sw = (r: Uint8Array): number => (r[r.length - 2]! << 8) | r[r.length - 1]!;

async function tandemFor(c: SealedCard, identity: string, transport?: InProcessTransport): Promise<{ tandem: TlsTandem; port: number; errors: Error[] }> {
  const tandem = new TlsTandem({ transport: transport ?? new InProcessTransport((a) => c.card.process(a)), pin: USER_PIN, identity });
  await tandem.start();
  const errors: Error[] = [];
  tandem.on('sessionError', (e: Error) => errors.push(e));
  tandem.on('secureConnection', (s: SeTlsSocket) => {
    s.on('data', (d: Buffer) => s.end(Buffer.concat([Buffer.from('echo:'), d])));
    s.on('error', () => undefined);
  });
  tandem.listen(0, '127.0.0.1');
  const [addr] = (await once(tandem, 'listening')) as [AddressInfo];
  return { tandem, port: addr.port, errors };
}

interface Outcome {
  readonly ok: boolean;
  readonly text?: string;
  readonly error?: NodeJS.ErrnoException;
  readonly socket: tls.TLSSocket;
}

/** One client exchange: handshake, "ping" → "echo:ping", close; or the error the client saw. */
async function exchange(port: number, c: SealedCard, opts: tls.ConnectionOptions = {}): Promise<Outcome> {
  const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [rootPem(c)], ...opts });
  const done = new Promise<Outcome>((resolve) => {
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.once('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, error: e, socket: s }));
    s.once('close', () => resolve({ ok: parts.length > 0, text: Buffer.concat(parts).toString(), socket: s }));
  });
  s.once('secureConnect', () => s.write('ping'));
  return within(done, 'a client exchange through the card');
}

/** A client key and certificate from `issuer` (serial `serial`). */
async function clientCert(issuer: { issueForSpki: (spki: Uint8Array, cn: string, o?: { serial?: string }) => Promise<Uint8Array> }, serial: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = await issuer.issueForSpki(new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })), `client ${serial}`, { serial });
  return { der, cert: new X509Certificate(der).toString(), key: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

test('a TLS handshake on channel 0 (Node TLS client, TlsTandem) while an SCP03 session runs on channel 1, admin commands between every APDU', async () => {
  const c = await sealedEmulatedCard();
  try {
    const a = await adminOn(c, 1);
    await enrolSlot(a, c.ca, 1);
    a.close();
    const admin = new SyncAdmin(c.card, c.factoryKeys, 1);
    let interleaved = 0;
    let revocation = 1;
    // Before every APDU of the tandem (channel 0), one admin command on channel 1: reads and writes.
    const transport = new InProcessTransport((apdu) => {
      if (interleaved % 2 === 0) admin.call(AdminRequest.getCardInfo());
      else admin.call(AdminRequest.putRevocationList({ number: revocation++, serials: [fromHex('77')] }));
      interleaved++;
      return c.card.process(apdu);
    });
    const { tandem, port, errors } = await tandemFor(c, 'slot1', transport);
    try {
      const before = interleaved;
      const r = await exchange(port, c);
      assert.equal(r.text, 'echo:ping', String(r.error));
      assert.ok(interleaved - before >= 4, `admin commands interleaved with the handshake APDUs (${interleaved - before})`);
      assert.equal(c.card.securityDomain.sessionState(1), 'open', 'the SCP03 session on channel 1 went on');
      assert.ok(revocation > 2, 'state-changing admin commands committed during the handshake');
      assert.deepEqual(errors, []);
    } finally {
      await tandem.close();
    }
  } finally {
    c.cleanup();
  }
});

test('a locked identity refuses the next handshake with access_denied; unlocked, it serves again', async () => {
  const c = await sealedEmulatedCard();
  try {
    const a = await adminOn(c, 1);
    await enrolSlot(a, c.ca, 1);
    const { tandem, port } = await tandemFor(c, 'slot1');
    try {
      assert.equal((await exchange(port, c)).text, 'echo:ping');
      await a.call(AdminRequest.lockIdentity({ slot: 1, lock: true }));
      const refused = await exchange(port, c);
      assert.equal(refused.ok, false);
      assert.equal(LOCKED_IDENTITY_ALERT, 49);
      assert.equal(refused.error?.code, 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', String(refused.error));
      // with SNI, without SNI: the same (the channel's default identity is the locked one)
      const noSni = await exchange(port, c, { servername: '' as string, checkServerIdentity: () => undefined });
      assert.equal(noSni.error?.code, 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED');
      await a.call(AdminRequest.lockIdentity({ slot: 1, lock: false }));
      assert.equal((await exchange(port, c)).text, 'echo:ping');
    } finally {
      await tandem.close();
    }
  } finally {
    c.cleanup();
  }
});

test("client certificates: the operator's client CAs decide; a revoked serial is refused with certificate_revoked; the deny-list binds every identity", async () => {
  const c = await sealedEmulatedCard();
  try {
    const a = await adminOn(c, 1);
    await enrolSlot(a, c.ca, 1, { policy: { exportAllowed: false, clientAuth: 'required' } });
    await a.call(AdminRequest.putTrustAnchors({ role: 'client-ca', certificates: [c.ca.operatorCa.cert] }));
    const good = await clientCert(c.ca.operatorCa, '0badcafe');
    const other = await clientCert(c.ca.manufacturer, '0badcaff');
    const { tandem, port } = await tandemFor(c, 'slot1');
    try {
      assert.equal((await exchange(port, c, { cert: good.cert, key: good.key })).text, 'echo:ping');
      const foreign = await exchange(port, c, { cert: other.cert, key: other.key });
      assert.equal(foreign.error?.code, 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'a CA the operator did not push');
      await a.call(AdminRequest.putRevocationList({ number: 1, serials: [fromHex('0badcafe')] }));
      const revoked = await exchange(port, c, { cert: good.cert, key: good.key });
      assert.equal(revoked.ok, false);
      assert.equal(revoked.error?.code, 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', String(revoked.error));
      // serials compare without redundant leading zeros, and a newer list lifts the ban
      await a.call(AdminRequest.putRevocationList({ number: 2, serials: [fromHex('000badcafe')] }));
      assert.equal((await exchange(port, c, { cert: good.cert, key: good.key })).error?.code, 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED');
      await a.call(AdminRequest.putRevocationList({ number: 3, serials: [] }));
      assert.equal((await exchange(port, c, { cert: good.cert, key: good.key })).text, 'echo:ping');
    } finally {
      await tandem.close();
    }
  } finally {
    c.cleanup();
  }
});

test('applet and card locks: SELECT refused with 6283, the commands of an applet selected before 6985, no handshake; unlocked, all is back', async () => {
  const c = await sealedEmulatedCard();
  try {
    const a = await adminOn(c, 1);
    await enrolSlot(a, c.ca, 1);
    const p = (apdu: Uint8Array): number => sw(c.card.process(apdu));
    const selectSetls = (ch: number) => cmd(ch, 0xa4, 0x04, 0x00, APPLET_AID, 256);
    assert.equal(p(selectSetls(0)), 0x9000);
    assert.equal(p(cmd(0xa0, 0x20, 0, 0, pad(USER_PIN))), 0x9000);
    const getState = cmd(0xa0, 0x19, 0, 0, new Uint8Array(0), 1);
    assert.equal(p(getState), 0x9000);
    assert.equal(p(Uint8Array.of(0x00, 0x70, 0x00, 0x02)), 0x9000);

    await a.setStatus(0x40, 0x80, APPLET_AID); // lock the setls applet
    assert.equal(p(selectSetls(2)), 0x6283, 'SELECT of a locked applet');
    assert.equal(c.card.lastError?.code, 'ERR_CARD_APPLET_LOCKED');
    assert.equal(p(getState), 0x6985, 'a command of the applet selected before the lock');
    assert.equal(p(cmd(0x02, 0xa4, 0x04, 0x00, TLS_SE_AID, 256)), 0x9000, 'the TLS-SE applet is not locked');
    const status = await a.getStatus(0x40);
    assert.match(toHex(status), new RegExp(`4f07${toHex(APPLET_AID)}9f700187`), 'GET STATUS shows it locked');
    await a.setStatus(0x40, 0x00, APPLET_AID);
    assert.equal(p(getState), 0x9000);
    assert.equal(p(selectSetls(2)), 0x9000);

    await a.setStatus(0x80, CardLifecycle.cardLocked);
    assert.equal(p(selectSetls(2)), 0x6283);
    assert.equal(p(cmd(0x02, 0xa4, 0x04, 0x00, TLS_SE_AID, 256)), 0x6283, 'every applet but the security domain');
    assert.equal(p(getState), 0x6985);
    await assert.rejects(tandemFor(c, 'slot1'), /6283|locked/i, 'no TLS service starts on a locked card');
    assert.equal(c.card.securityDomain.sessionState(1), 'open', 'the security domain works on a locked card');
    await a.setStatus(0x80, CardLifecycle.secured);
    assert.equal(p(getState), 0x9000);
    const t = await tandemFor(c, 'slot1');
    try {
      assert.equal((await exchange(t.port, c)).text, 'echo:ping');
    } finally {
      await t.tandem.close();
    }
  } finally {
    c.cleanup();
  }
});

test('a terminated card: the TLS applets answer SELECT with 6A81, every identity and PSK is gone; the security domain answers reads', async () => {
  const c = await sealedEmulatedCard();
  try {
    const a = await adminOn(c, 1);
    await enrolSlot(a, c.ca, 1);
    await a.setStatus(0x80, CardLifecycle.terminated);
    assert.equal(sw(c.card.process(cmd(0x00, 0xa4, 0x04, 0x00, APPLET_AID, 256))), 0x6a81);
    assert.equal(c.card.lastError?.code, 'ERR_CARD_TERMINATED');
    assert.equal(sw(c.card.process(cmd(0x00, 0xa4, 0x04, 0x00, TLS_SE_AID, 256))), 0x6a81);
    const info = parseBerTlvs(await a.call(AdminRequest.getCardInfo()));
    assert.ok(info.length > 0);
    c.card.close();
    const st = deserializeState(new SealedStore(c.dir, c.masterKey).read());
    assert.deepEqual(st.identities, []);
    assert.deepEqual(st.psks, []);
    assert.equal(st.isd?.lifecycle, CardLifecycle.terminated);
  } finally {
    c.cleanup();
  }
});

test("the operator's time anchor is a hard floor: older host times refused, SET-CLOCK cannot move the clock back; a newer anchor can", async () => {
  const c = await sealedEmulatedCard();
  try {
    const a = await adminOn(c, 1);
    await a.call(AdminRequest.putTrustAnchors({ role: 'operator-root', certificates: [c.ca.operatorRoot.cert] }));
    const T = Math.floor(Date.now() / 1000) + 86_400; // a day ahead of the host
    await a.call(AdminRequest.putTimeAnchor(signTimeAnchor({ uid: c.uid, time: T, counter: 1 }, c.ca.operatorRoot.key)));
    const xmit = async (apdu: Parameters<typeof xcv>[1]) => (await xcv(c.card, apdu)).sw;
    assert.equal(sw(c.card.process(cmd(0x00, 0xa4, 0x04, 0x00, APPLET_AID, 256))), 0x9000);
    assert.equal(sw(c.card.process(cmd(0xa0, 0x20, 0, 0, pad(USER_PIN)))), 0x9000);
    assert.equal(sw(c.card.process(cmd(0xa0, 0x20, 0, 1, pad(OPERATOR_PIN)))), 0x9000);
    const start = (t: number) => a0(0x80, 0x02, 0x00, eapResponse(0, new Uint8Array(0), { time: t }));
    assert.equal(await xmit(start(T - 10)), 0x6a80, 'a host time 10 s before the anchor (the 300 s tolerance does not apply)');
    assert.equal(c.card.lastError?.code, 'ERR_CARD_TIME_ROLLBACK');
    assert.notEqual(await xmit(start(T + 10)), 0x6a80);
    assert.equal(await xmit(a0(0xd6, 0, 0, fromHex((T - 100).toString(16).padStart(8, '0')))), 0x6985, 'SET-CLOCK back');
    assert.equal(await xmit(a0(0xd6, 0, 0, new Uint8Array(0))), 0x6985, 'SET-CLOCK unset');
    assert.equal(await xmit(a0(0xd6, 0, 0, fromHex((T + 1000).toString(16).padStart(8, '0')))), 0x9000, 'SET-CLOCK forward');
    await a.call(AdminRequest.putTimeAnchor(signTimeAnchor({ uid: c.uid, time: T - 86_400, counter: 2 }, c.ca.operatorRoot.key)));
    assert.notEqual(await xmit(start(T - 3600)), 0x6a80, 'the only way back: a newer anchor with an older time');
  } finally {
    c.cleanup();
  }
});

test('TLS sessions in the audit log: slot, suite, the client certificate hash and the session exporter hash, under the signed head; no write on the handshake path', async () => {
  const c = await sealedEmulatedCard();
  try {
    const a = await adminOn(c, 1);
    await enrolSlot(a, c.ca, 1, { policy: { exportAllowed: false, clientAuth: 'optional' } });
    await a.call(AdminRequest.putTrustAnchors({ role: 'client-ca', certificates: [c.ca.operatorCa.cert] }));
    const client = await clientCert(c.ca.operatorCa, '0c11e4');
    const { tandem, port } = await tandemFor(c, 'slot1');
    let exporterValue: Buffer | undefined;
    try {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [rootPem(c)], cert: client.cert, key: client.key });
      await once(s, 'secureConnect');
      exporterValue = s.exportKeyingMaterial(32, AUDIT_LABEL, Buffer.alloc(0));
      s.on('data', () => undefined);
      s.write('ping');
      await once(s, 'close');
    } finally {
      await tandem.close(); // the session has ended on the card (RESET-STATE): its entry is in the log
    }
    const nonce = fromHex('0102030405060708');
    const page = parseAuditLogResponse(await a.call(AdminRequest.readAuditLog({ from: 1, max: 16, nonce })));
    const reader = new AdminClient(follow(c.card)); // public data, no session (channel 0)
    await reader.select();
    const chain = parseBerTlvs(parseBerTlvs(await reader.getData(GetDataTag.attestationChain))[0]!.value);
    const attestationCert = encodeBerTlv(0x30, chain[0]!.value);
    const v = verifyAuditPage(page, { attestationCert, uid: c.uid, nonce });
    const sessions = v.entries.filter((e) => e.event === AuditEvent.tlsSession);
    assert.equal(sessions.length, 1, 'one entry per session');
    const d = sessions[0]!.detail;
    assert.equal(d[0], 1, 'slot 1');
    assert.equal((d[1]! << 8) | d[2]!, 0x1301, 'TLS_AES_128_GCM_SHA256');
    assert.equal(d[3], 0, 'not exported');
    assert.equal(toHex(d.subarray(4, 20)), createHash('sha256').update(exporterValue!).digest('hex').slice(0, 32), 'the client can find its session: SHA-256 of its exporter value');
    assert.equal(toHex(d.subarray(20, 36)), createHash('sha256').update(client.der).digest('hex').slice(0, 32), "the client certificate's hash");
  } finally {
    c.cleanup();
  }
});

test('the handshake path never waits for a write: a session on a sealed card commits nothing until the log is read', async () => {
  const c = await sealedEmulatedCard();
  let writes = 0;
  try {
    const a = await adminOn(c, 1);
    await enrolSlot(a, c.ca, 1);
    a.close();
    c.card.close();
    const card = EmulatedCard.open({ dir: c.dir, masterKey: c.masterKey, storeHooks: { onWriteStep: (s) => void (s === 'beforeTmpWrite' && writes++) } });
    try {
      // the operator's session is open before the TLS sessions (its own writes are done)
      assert.equal(sw(card.process(Uint8Array.of(0x00, 0x70, 0x00, 0x01))), 0x9000);
      const sd = new SyncAdmin(card, c.factoryKeys, 1);
      const t = await tandemFor({ ...c, card } as SealedCard, 'slot1');
      try {
        // the first session makes the ticket key and sets the time floor (both written once)
        assert.equal((await exchange(t.port, c)).text, 'echo:ping');
        const w0 = writes;
        for (let i = 0; i < 3; i++) assert.equal((await exchange(t.port, c)).text, 'echo:ping');
        assert.equal(writes, w0, 'three sessions, audited, and no state write');
      } finally {
        await t.tandem.close();
      }
      const onDisk = (): number =>
        deserializeState(new SealedStore(c.dir, c.masterKey).read()).isd!.audit.entries.map(parseAuditEntry).filter((e) => e.event === AuditEvent.tlsSession).length;
      assert.ok(onDisk() < 4, 'the last sessions are still in RAM');
      const page = parseAuditLogResponse(sd.call(AdminRequest.readAuditLog({ from: 1, max: 16 })));
      assert.ok(page.entries.length >= 4);
      assert.equal(onDisk(), 4, 'written before the head was signed');
    } finally {
      card.close();
    }
  } finally {
    c.cleanup();
  }
});

test('a trust change drops the ticket key: a ticket issued before PutRevocationList does not resume after it', async () => {
  const c = await sealedEmulatedCard();
  try {
    const a = await adminOn(c, 1);
    await enrolSlot(a, c.ca, 1);
    const { tandem, port } = await tandemFor(c, 'slot1');
    try {
      const first = await exchange(port, c);
      let session: Buffer | undefined;
      await new Promise<void>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [rootPem(c)] });
        s.on('session', (sess: Buffer) => (session = sess));
        s.on('error', () => resolve());
        s.once('secureConnect', () => s.write('ping'));
        s.on('data', () => undefined);
        s.once('close', () => resolve());
      });
      assert.ok(first.ok && session, 'a ticket');
      // a resumption proves tickets work, and brings a fresh ticket (each ticket is used once)
      let fresh: Buffer | undefined;
      const again = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [rootPem(c)], session });
      again.on('session', (sess: Buffer) => (fresh = sess));
      again.on('data', () => undefined);
      await once(again, 'secureConnect');
      assert.equal(again.isSessionReused(), true, 'the ticket resumes');
      again.write('ping');
      await once(again, 'close');
      assert.ok(fresh, 'a fresh ticket');
      await a.call(AdminRequest.putRevocationList({ number: 1, serials: [fromHex('01')] }));
      const after = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: [rootPem(c)], session: fresh });
      await once(after, 'secureConnect');
      assert.equal(after.isSessionReused(), false, 'a full handshake after the trust change');
      after.destroy();
    } finally {
      await tandem.close();
    }
  } finally {
    c.cleanup();
  }
});

test("the security domain's slot labels are its own: the setls applet's identity commands refuse slot1…slot8 (6985)", async () => {
  const c = await sealedEmulatedCard();
  try {
    const p = async (apdu: Parameters<typeof xcv>[1]) => (await xcv(c.card, apdu)).sw;
    assert.equal(sw(c.card.process(cmd(0x00, 0xa4, 0x04, 0x00, APPLET_AID, 256))), 0x9000);
    assert.equal(sw(c.card.process(cmd(0xa0, 0x20, 0, 1, pad(OPERATOR_PIN)))), 0x9000);
    assert.equal(await p(a0(0x46, 0x01, 0x00, utf8('slot1'))), 0x6985);
    assert.equal(await p(a0(0x46, 0x01, 0x00, utf8('slot8'))), 0x6985);
    assert.equal(await p(a0(0x46, 0x01, 0x00, utf8('slot9'))), 0x9000, 'not a slot');
    assert.equal(await p(a0(0xde, 0, 0, concat(Uint8Array.of(0x80, 5), utf8('slot2'), fromHex('400101')))), 0x6985, 'PUT-IDENTITY-POLICY');
  } finally {
    c.cleanup();
  }
});

test('a card made before the security domain existed: no record, its SELECT answers 6A82, the TLS applet works as before', async () => {
  const c = await sealedEmulatedCard();
  try {
    c.card.close();
    const store = new SealedStore(c.dir, c.masterKey);
    const st = deserializeState(store.read());
    st.isd = undefined;
    store.write(serializeState(st));
    const card = EmulatedCard.open({ dir: c.dir, masterKey: c.masterKey });
    try {
      assert.equal(deserializeState(new SealedStore(c.dir, c.masterKey).read()).isd, undefined);
      const t = follow(card);
      assert.equal(sw(t(cmd(0x00, 0xa4, 0x04, 0x00, fromHex('A000000151000000'), 256))), 0x6a82);
      assert.equal(sw(t(cmd(0x00, 0xa4, 0x04, 0x00, APPLET_AID, 256))), 0x9000);
      assert.equal(sw(t(cmd(0xa0, 0x20, 0, 1, pad(OPERATOR_PIN)))), 0x9000);
      assert.equal(sw(t(cmd(0xa0, 0x46, 0x01, 0x00, utf8('slot1'), 256))), 0x9000, 'no security domain owns slot labels');
    } finally {
      card.close();
    }
  } finally {
    c.cleanup();
  }
});

test("the card OS cuts the security domain's answers to Ne: 256 bytes and 61xx, the rest by GET RESPONSE on the same channel", async () => {
  const c = await sealedEmulatedCard();
  try {
    assert.equal(sw(c.card.process(Uint8Array.of(0x00, 0x70, 0x00, 0x02))), 0x9000);
    assert.equal(sw(c.card.process(cmd(0x02, 0xa4, 0x04, 0x00, fromHex('A000000151000000'), 256))), 0x9000);
    const first = c.card.process(Uint8Array.of(0x82, 0xca, 0xdf, 0x51, 0x00)); // GET DATA DF51, Le 00 (256)
    assert.equal(first.length, 258, 'Ne bytes');
    assert.equal(first[256], 0x61);
    const parts = [first.subarray(0, 256)];
    let r = first;
    while (r[r.length - 2] === 0x61) {
      r = c.card.process(Uint8Array.of(0x02, 0xc0, 0x00, 0x00, r[r.length - 1]!));
      parts.push(r.subarray(0, r.length - 2));
    }
    assert.equal(sw(r), 0x9000);
    const chain = parseBerTlvs(concat(...parts))[0]!;
    assert.equal(chain.tag, 0xdf51);
    assert.match(new X509Certificate(encodeBerTlv(0x30, parseBerTlvs(chain.value)[0]!.value)).subject, new RegExp(`CN=${toHex(c.uid)}`));
    // a command without Le (SELECT, case 3) gets 61xx for its FCI
    const sel = c.card.process(cmd(0x02, 0xa4, 0x04, 0x00, fromHex('A000000151000000'), 0));
    assert.equal(sel.length, 2);
    assert.equal(sel[0], 0x61);
  } finally {
    c.cleanup();
  }
});
