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
    const c = card.process(Uint8Array.of(0x80, 0xca, 0xdf, 0x52, 0x00)); // channel 0: the security domain answers GET DATA DF52 unselected? select first
    counter = c.length === 9 && c[7] === 0x90 ? (c[3]! << 24) | (c[4]! << 16) | (c[5]! << 8) | c[6]! : -1;
    if (counter < 0) {
      card.process(Uint8Array.of(0x00, 0xa4, 0x04, 0x00, 0x08, 0xa0, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00, 0x00, 0x00));
      const d = card.process(Uint8Array.of(0x80, 0xca, 0xdf, 0x52, 0x00));
      counter = (d[3]! << 24) | (d[4]! << 16) | (d[5]! << 8) | d[6]!;
    }
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
