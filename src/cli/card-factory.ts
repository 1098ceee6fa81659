/**
 * `setls factory` (a batch of new cards with their factory data, and the batch manifest) and
 * `setls card manifest` (one card's manifest entry): the manufacturer's side of the security domain
 * (cli/manufacturer.ts; docs/admin-protocol.md §8). Manifests are the operator's format
 * (operator/pki/manifest.ts) and never carry a key.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { SetlsError, toHex } from '../bytes/index.js';
import { CardClient } from '../host/index.js';
import { CardLifecycle, FACTORY_KVN } from '../protocol/index.js';
import { InProcessTransport } from '../transport/index.js';
import { openCardForAdmin } from './admin-access.js';
import { cardPaths } from './card-files.js';
import { createCardFiles, defaultManufacturerDir } from './card-setup.js';
import { factoryPersonalise, issuedBy, manifestEntry, openManufacturer, readSecurityDomain, withGetResponse, type ManifestEntryJson } from './manufacturer.js';

/** The default manufacturer folder of `setls factory`: next to the default card and CA folders. */
export const DEFAULT_MANUFACTURER_DIR = '.setls/manufacturer';

export interface BatchResult {
  readonly out: string;
  readonly manifestPath: string;
  readonly cards: readonly { readonly uid: string; readonly cardDir: string }[];
  readonly transportKeyId: string;
}

/**
 * Makes `count` cards in `out` (each `<out>/<uid>/` with `<uid>.key`, `.pin`, `.admin.json`), writes
 * their factory data through their security domains (sealed), and the batch manifest
 * `<out>/manifest.json` ({ format: "setls-manifest-v1", name, cards: [entries] }).
 */
export async function makeBatch(o: { count: number; out: string; manufacturerDir: string; name?: string }): Promise<BatchResult> {
  if (!Number.isInteger(o.count) || o.count < 1 || o.count > 10_000) throw new SetlsError('ERR_CLI_COUNT', '--count must be 1..10000');
  const out = resolve(o.out);
  const manifestPath = join(out, 'manifest.json');
  if (existsSync(manifestPath)) throw new SetlsError('ERR_CARD_EXISTS', `${manifestPath} already exists: refusing to overwrite a batch`);
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const m = await openManufacturer(resolve(o.manufacturerDir));
  const cards: { uid: string; cardDir: string }[] = [];
  const entries: ManifestEntryJson[] = [];
  for (let i = 0; i < o.count; i++) {
    const uid = new Uint8Array(randomBytes(16));
    const cardDir = join(out, toHex(uid));
    const { card } = createCardFiles(cardPaths(cardDir));
    const transport = new InProcessTransport((apdu) => card.process(apdu));
    try {
      const rec = await factoryPersonalise(withGetResponse((a) => transport.transmit(a)), m, uid);
      entries.push(manifestEntry(rec, { transportKeyId: m.transportKeyId }));
      cards.push({ uid: toHex(uid), cardDir });
    } finally {
      await transport.close();
      card.close();
    }
  }
  const name = o.name ?? `setls factory batch ${new Date().toISOString()}`;
  writeFileSync(manifestPath, JSON.stringify({ format: 'setls-manifest-v1', name, cards: entries }, null, 2) + '\n', { mode: 0o644 });
  return { out, manifestPath, cards, transportKeyId: m.transportKeyId };
}

/**
 * The manifest entry of one card (in-process, or through the admin socket of the process serving
 * it): its security domain's UID and attestation certificate, KVN 30, the manufacturer's transport
 * key id when the local manufacturer in `manufacturerDir` made it, and the names of its first TLS
 * identity as the enrolment profile. ERR_CLI_NO_SD when the card has no personalised security domain.
 */
export async function cardManifestEntry(o: { cardDir: string; cardKey?: string; manufacturerDir?: string }): Promise<ManifestEntryJson> {
  const opened = await openCardForAdmin({ cardDir: o.cardDir, cardKey: o.cardKey, quiet: true });
  try {
    const profile = await identityProfile(new CardClient(opened.transport));
    const sd = await readSecurityDomain(withGetResponse((a) => opened.transport.transmit(a)));
    if (!sd || !sd.uid || sd.lifecycle === CardLifecycle.opReady) {
      throw new SetlsError('ERR_CLI_NO_SD', `the card in ${cardPaths(o.cardDir).dir} has no security domain personalised (made before factory personalisation existed: create it again with setls card init)`);
    }
    const mdir = resolve(o.manufacturerDir ?? defaultManufacturerDir(o.cardDir));
    let transportKeyId: string | undefined;
    if (existsSync(join(mdir, 'master.key')) && existsSync(join(mdir, 'ca.crt')) && sd.kvns.includes(FACTORY_KVN)) {
      const m = await openManufacturer(mdir);
      if (issuedBy(m, sd.attestationChain)) transportKeyId = m.transportKeyId;
    }
    return manifestEntry({ uid: sd.uid, attestationChain: sd.attestationChain }, { ...(transportKeyId ? { transportKeyId } : {}), ...(profile ? { profile } : {}) });
  } finally {
    await opened.close();
  }
}

/** The DNS names and IP addresses of the card's first TLS identity with a certificate. */
async function identityProfile(client: CardClient): Promise<{ dnsNames: string[]; ipAddresses: string[] } | undefined> {
  await client.select();
  for (const label of (await client.cardInfo()).identities) {
    const id = await client.identityInfo(label);
    const leaf = id.certificates[0];
    if (!leaf) continue;
    const san = new X509Certificate(leaf).subjectAltName ?? '';
    const items = san ? san.split(', ') : [];
    return {
      dnsNames: items.filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4)),
      ipAddresses: items.filter((s) => s.startsWith('IP Address:')).map((s) => s.slice(11)),
    };
  }
  return undefined;
}

export function registerFactoryCommands(program: Command, card: Command, defaultCardDir: string): void {
  card
    .command('manifest')
    .description("print this card's manifest entry (JSON, the operator's manifest format): UID, attestation certificate, KVN — never keys")
    .option('--card-dir <dir>', 'card state folder', defaultCardDir)
    .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
    .option('--manufacturer-dir <dir>', 'the local manufacturer whose master key is named as transportKeyId (default: <card-dir>/../manufacturer)')
    .action(async (o: { cardDir: string; cardKey?: string; manufacturerDir?: string }) => {
      console.log(JSON.stringify(await cardManifestEntry(o), null, 2));
    });

  program
    .command('factory')
    .description("manufacture a batch of emulated cards: each one's UID, attestation key (made in the card, certified by the manufacturer CA) and factory SCP03 keys written through its security domain, sealed; writes the batch manifest (never keys)")
    .requiredOption('--count <n>', 'how many cards', (v) => Number(v))
    .requiredOption('--out <dir>', 'where the cards (<out>/<uid>/, <uid>.key, .pin, .admin.json) and manifest.json go')
    .option('--manufacturer-dir <dir>', 'the local manufacturer: CA and master key, made on first use', DEFAULT_MANUFACTURER_DIR)
    .option('--name <name>', 'batch name in the manifest')
    .action(async (o: { count: number; out: string; manufacturerDir: string; name?: string }) => {
      const r = await makeBatch(o);
      console.log(`${r.cards.length} card(s) in ${r.out}`);
      for (const c of r.cards) console.log(`  ${c.uid}  ${c.cardDir}`);
      console.log(`  manifest: ${r.manifestPath} (UID, attestation certificate, KVN 30, transport key ${r.transportKeyId}; no keys)`);
      console.log(`  manufacturer CA: ${join(resolve(o.manufacturerDir), 'ca.crt')} (operators trust it: setls operator trust-manufacturer)`);
    });
}
