// Factory data through the CLI: `setls card init` seals every new card's security domain (UID,
// attestation key certified by the local manufacturer in .setls/manufacturer/, factory SCP03 keys KVN
// 30 from the manufacturer master key); `card info --json` shows the UID; `card manifest` prints an
// entry the operator's manifest parser accepts; `setls factory --count N` makes a batch and its
// manifest (never keys); `operator init --manufacturer-keys` keeps the master so the operator derives
// the factory keys; a card without a security domain says so.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromHex, toHex } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import { SealedStore } from '../../src/card/os/sealed-store.js';
import { deserializeState, serializeState } from '../../src/card/state.js';
import { AdminClient, AdminRequest, parseCardInfo } from '../../src/gp/admin/index.js';
import { aesKcv, deriveCardKeys } from '../../src/gp/index.js';
import { parseManifest } from '../../src/operator/pki/manifest.js';
import { transportKeysForCard } from '../../src/operator/keys/master-keys.js';
import { readMasterKey } from '../../src/cli/card-files.js';
import { withGetResponse } from '../../src/cli/manufacturer.js';

const root = mkdtempSync(join(tmpdir(), 'setls-factory-'));
after(() => rmSync(root, { recursive: true, force: true }));
const BIN = join(process.cwd(), 'bin/setls.mjs');

function setls(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, cwd: root });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Opens an SCP03 session on the card in `dir` with `keys`; returns GetCardInfo's UID. */
async function sessionUid(dir: string, keys: ReturnType<typeof deriveCardKeys>): Promise<string> {
  const card = EmulatedCard.open({ dir, masterKey: readMasterKey(`${dir}.key`) });
  try {
    const a = new AdminClient(withGetResponse(async (apdu) => card.process(apdu)));
    await a.select();
    await a.open(keys);
    return toHex(parseCardInfo(await a.call(AdminRequest.getCardInfo())).uid);
  } finally {
    card.close();
  }
}

const manufacturer = join(root, '.setls', 'manufacturer');

test('card init seals the security domain with the local manufacturer; card info --json shows the UID; card manifest is an operator manifest entry', async () => {
  const r = setls(['card', 'init', '--card-dir', '.setls/card']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /security domain: UID [0-9a-f]{32}/);
  for (const f of ['ca.key', 'master.key']) assert.equal(statSync(join(manufacturer, f)).mode & 0o777, 0o600, f);
  assert.ok(existsSync(join(manufacturer, 'ca.crt')));
  const info = JSON.parse(setls(['card', 'info', '--json', '--card-dir', '.setls/card']).stdout) as { uid: string; securityDomain: { lifecycle: string; kvns: string[] } };
  assert.match(info.uid, /^[0-9a-f]{32}$/);
  assert.deepEqual(info.securityDomain, { lifecycle: 'SECURED', kvns: ['30'] });

  const m = setls(['card', 'manifest', '--card-dir', '.setls/card']);
  assert.equal(m.code, 0, m.stderr);
  const entry = JSON.parse(m.stdout) as { uid: string; kvn: string; transportKeyId: string; profile: { dnsNames: string[]; ipAddresses: string[] } };
  assert.equal(entry.uid, info.uid);
  assert.equal(entry.kvn, '30');
  const master = fromHex(readFileSync(join(manufacturer, 'master.key'), 'utf8').trim());
  assert.equal(entry.transportKeyId, `mfr-${toHex(aesKcv(master))}`);
  assert.deepEqual(entry.profile, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  assert.doesNotMatch(m.stdout, new RegExp(toHex(master), 'i'), 'no key in the manifest');
  const parsed = parseManifest(entry, [new Uint8Array(Buffer.from(readFileSync(join(manufacturer, 'ca.crt'), 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64'))], Date.now());
  assert.ok(typeof parsed !== 'string', String(parsed));
  assert.deepEqual(parsed.problems, []);
  assert.equal(toHex(parsed.entries[0]!.uid), info.uid);
  // the factory key set is KVN 30 derived from the manufacturer master and the UID: it opens a session
  assert.equal(await sessionUid(join(root, '.setls', 'card'), deriveCardKeys(master, fromHex(info.uid), 0x30)), info.uid);
});

test('setls factory --count 3: three sealed cards and a batch manifest the operator accepts, without keys; operator init --manufacturer-keys derives their factory keys', async () => {
  const r = setls(['factory', '--count', '3', '--out', 'batch', '--name', 'test batch']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(readFileSync(join(root, 'batch', 'manifest.json'), 'utf8')) as { format: string; name: string; cards: { uid: string; transportKeyId: string }[] };
  assert.equal(doc.format, 'setls-manifest-v1');
  assert.equal(doc.name, 'test batch');
  assert.equal(doc.cards.length, 3);
  const master = fromHex(readFileSync(join(manufacturer, 'master.key'), 'utf8').trim());
  const text = readFileSync(join(root, 'batch', 'manifest.json'), 'utf8');
  assert.doesNotMatch(text, new RegExp(toHex(master), 'i'));
  assert.doesNotMatch(text, /PRIVATE KEY|master|operatorPin/i);
  const ca = new Uint8Array(Buffer.from(readFileSync(join(manufacturer, 'ca.crt'), 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64'));
  const parsed = parseManifest(doc, [ca], Date.now());
  assert.ok(typeof parsed !== 'string');
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(parsed.entries.map((e) => toHex(e.uid)).sort(), doc.cards.map((c) => c.uid).sort());
  assert.deepEqual(readdirSync(join(root, 'batch')).filter((f) => /^[0-9a-f]{32}$/.test(f)).sort(), doc.cards.map((c) => c.uid).sort());

  const op = setls(['operator', 'init', '--dir', 'operator', '--manufacturer-ca', join(manufacturer, 'ca.crt'), '--manufacturer-keys', join(manufacturer, 'master.key')]);
  assert.equal(op.code, 0, op.stderr);
  const id = doc.cards[0]!.transportKeyId;
  const keyFile = join(root, 'operator', 'keys', `transport-${id}.key`);
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  for (const c of doc.cards) {
    const keys = transportKeysForCard(join(root, 'operator', 'keys'), c.transportKeyId, fromHex(c.uid));
    assert.equal(await sessionUid(join(root, 'batch', c.uid), keys), c.uid, 'the operator opens the factory session');
  }
});

test('a card without a security domain record: card info says "no security domain personalised", card manifest refuses', () => {
  assert.equal(setls(['card', 'init', '--card-dir', 'old/card']).code, 0);
  const dir = join(root, 'old', 'card');
  const store = new SealedStore(dir, readMasterKey(`${dir}.key`));
  const st = deserializeState(store.read());
  st.isd = undefined; // as a card made before the security domain existed
  store.write(serializeState(st));
  const info = setls(['card', 'info', '--card-dir', 'old/card']);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /no security domain personalised/);
  const json = JSON.parse(setls(['card', 'info', '--json', '--card-dir', 'old/card']).stdout) as { uid: unknown; securityDomain: unknown };
  assert.equal(json.uid, null);
  assert.equal(json.securityDomain, 'no security domain personalised');
  const m = setls(['card', 'manifest', '--card-dir', 'old/card']);
  assert.equal(m.code, 1);
  assert.match(m.stderr, /ERR_CLI_NO_SD/);
});
