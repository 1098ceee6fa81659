/**
 * Card set-up shared by the CLI and the interop tests: create an emulated card, personalise it
 * through APDUs (key generated inside, CSR signed by the local CA, chain installed), and open a
 * transport to it. This is the one place (with cli/) that wires card, transport and host together.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, writeFileSync, chmodSync } from 'node:fs';
import { EmulatedCard } from '../card/index.js';
import { InProcessTransport, TracingTransport, type CardTransport } from '../transport/index.js';
import { CardClient } from '../host/index.js';
import { openLocalCa, fingerprintOf } from '../pki/local-ca.js';
import { SetlsError } from '../bytes/index.js';
import { cardPaths, newMasterKey, randomDigits, readMasterKey, writeSecretFile, type CardPaths } from './card-files.js';

export const DEFAULT_IDENTITY = 'default';

export interface InitOptions {
  readonly cardDir: string;
  readonly caDir?: string;
  readonly cardKey?: string;
  readonly pinFile?: string;
  readonly keyType?: 'p256';
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

export interface InitResult {
  readonly paths: CardPaths;
  readonly caCertPath: string;
  readonly caFingerprint: string;
  readonly serial: string;
  readonly leafFingerprint: string;
  readonly leafPem: string;
  readonly spki: Uint8Array;
}

export async function initCard(opts: InitOptions): Promise<InitResult> {
  const paths = cardPaths(opts.cardDir, { cardKey: opts.cardKey, pinFile: opts.pinFile, caDir: opts.caDir });
  if (opts.keyType && opts.keyType !== 'p256') throw new SetlsError('ERR_CLI_KEY_TYPE', `unsupported key type ${opts.keyType} (this version: p256)`);
  for (const p of [paths.dir, paths.keyFile, paths.pinFile, paths.adminFile]) {
    if (existsSync(p)) throw new SetlsError('ERR_CARD_EXISTS', `${p} already exists: refusing to overwrite a card (remove it first)`);
  }
  const userPin = randomDigits(6);
  const operatorPin = randomDigits(8);
  const puk = randomDigits(8);
  const masterKey = newMasterKey(paths.keyFile);
  const card = EmulatedCard.create({ dir: paths.dir, masterKey, userPin, operatorPin, puk });
  writeSecretFile(paths.pinFile, userPin + '\n');
  writeSecretFile(paths.adminFile, JSON.stringify({ operatorPin, puk }, null, 2) + '\n');

  const transport = new InProcessTransport((apdu) => card.process(apdu));
  const client = new CardClient(transport);
  try {
    await client.select();
    await client.verifyPin(operatorPin, 'operator');
    const spki = await client.generateKey(DEFAULT_IDENTITY);
    const dnsNames = opts.dnsNames ?? ['localhost'];
    const ipAddresses = opts.ipAddresses ?? ['127.0.0.1'];
    const csr = await client.getCsr({ label: DEFAULT_IDENTITY, commonName: dnsNames[0] ?? 'setls device', dnsNames, ipAddresses });
    const ca = await openLocalCa(paths.caDir);
    const leaf = await ca.sign(csr, { dnsNames, ipAddresses });
    await client.putChain(DEFAULT_IDENTITY, [leaf]);
    const info = await client.cardInfo();
    return {
      paths,
      caCertPath: ca.certPath,
      caFingerprint: ca.fingerprint,
      serial: info.serial,
      leafFingerprint: fingerprintOf(leaf),
      leafPem: new X509Certificate(leaf).toString(),
      spki,
    };
  } finally {
    await transport.close();
  }
}

export interface OpenedCard {
  readonly transport: CardTransport;
  readonly card: EmulatedCard;
}

/** Opens an existing emulated card in-process; with `trace`, every APDU goes to `traceSink`. */
export function openCard(opts: {
  cardDir: string;
  cardKey?: string;
  trace?: boolean;
  traceSink?: (line: string) => void;
}): OpenedCard {
  const paths = cardPaths(opts.cardDir, { cardKey: opts.cardKey });
  if (!existsSync(paths.dir)) {
    throw new SetlsError('ERR_CARD_MISSING', `no card in ${paths.dir} (create one with 'setls card init --card-dir ${opts.cardDir}')`);
  }
  const card = EmulatedCard.open({ dir: paths.dir, masterKey: readMasterKey(paths.keyFile) });
  let transport: CardTransport = new InProcessTransport((apdu) => card.process(apdu));
  if (opts.trace) transport = new TracingTransport(transport, opts.traceSink ?? ((l) => process.stderr.write(l + '\n')));
  return { transport, card };
}

/** Writes a PEM file readable by clients (the CA is public). */
export function writePublicFile(path: string, text: string): void {
  writeFileSync(path, text);
  chmodSync(path, 0o644);
}
