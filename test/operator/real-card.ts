/**
 * A real emulated card for the operator's end-to-end tests and bench, made exactly as
 * `setls card init` makes one (initCard: factory data written through its security domain by the
 * local manufacturer in `manufacturerDir` — UID, attestation key, factory keys, sealed — then PINs
 * and a local-CA TLS identity), with its manifest entry as `setls card manifest` prints it, plus the
 * card's next SCP03 sequence counter (public, GET DATA DF52) for manifests that carry it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initCard, openCard } from '../../src/cli/card-setup.js';
import { cardManifestEntry } from '../../src/cli/card-factory.js';
import { concat, toHex } from '../../src/bytes/index.js';
import { ISD_AID } from '../../src/gp/admin/index.js';

export interface RealCard {
  readonly cardDir: string;
  readonly uidHex: string;
  readonly manifest: Record<string, unknown>;
  /** The next SCP03 sequence counter when it left the factory. */
  readonly sequenceCounter: number;
  manifestEntry(withCounter?: boolean): Record<string, unknown>;
}

export interface RealManufacturer {
  readonly dir: string;
  readonly caPem: string;
  readonly masterKeyFile: string;
}

export function manufacturerOf(dir: string): RealManufacturer {
  return { dir, caPem: readFileSync(join(dir, 'ca.crt'), 'utf8'), masterKeyFile: join(dir, 'master.key') };
}

export async function makeRealCard(cardDir: string, manufacturerDir: string, opts: { caDir?: string } = {}): Promise<RealCard> {
  const init = await initCard({ cardDir, manufacturerDir, ...(opts.caDir ? { caDir: opts.caDir } : {}) });
  const manifest = (await cardManifestEntry({ cardDir, manufacturerDir })) as unknown as Record<string, unknown>;
  const { card } = openCard({ cardDir });
  let counter: number;
  try {
    // SELECT the security domain on channel 0, then GET DATA DF52 (its next sequence counter, 4 bytes)
    const sel = card.process(concat(Uint8Array.of(0x00, 0xa4, 0x04, 0x00, ISD_AID.length), ISD_AID, Uint8Array.of(0x00)));
    if (sel[sel.length - 2] !== 0x90 && sel[sel.length - 2] !== 0x61) throw new Error(`SELECT of the security domain answered ${toHex(sel.subarray(-2))}`);
    const d = card.process(Uint8Array.of(0x80, 0xca, 0xdf, 0x52, 0x00));
    if (d.length < 6 || d[d.length - 2] !== 0x90) throw new Error(`GET DATA DF52 answered ${toHex(d)}`);
    counter = ((d[d.length - 6]! << 24) | (d[d.length - 5]! << 16) | (d[d.length - 4]! << 8) | d[d.length - 3]!) >>> 0;
  } finally {
    card.close();
  }
  return {
    cardDir,
    uidHex: init.uid,
    manifest,
    sequenceCounter: counter,
    manifestEntry: (withCounter = false) => ({ ...manifest, ...(withCounter ? { sequenceCounter: counter } : {}) }),
  };
}
