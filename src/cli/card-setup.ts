/**
 * Card set-up shared by the CLI and the interop tests: create an emulated card, write its factory
 * data through its security domain (UID, attestation key certified by the local manufacturer,
 * factory SCP03 keys, sealed: cli/manufacturer.ts), personalise its TLS identity through APDUs (key
 * generated inside, CSR signed by the local CA, chain installed), and open a transport to it. This is the one place (with cli/) that wires card, transport and host together.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, writeFileSync, chmodSync } from 'node:fs';
import { EmulatedCard } from '../card/index.js';
import { InProcessTransport, TracingTransport, type CardTransport } from '../transport/index.js';
import { CardClient, KeyType, type KeyTypeName } from '../host/index.js';
import { openLocalCa, fingerprintOf, type LocalCa } from '../pki/local-ca.js';
import { dirname, join, resolve } from 'node:path';
import { SetlsError, toHex } from '../bytes/index.js';
import { cardPaths, newMasterKey, randomDigits, readMasterKey, readSecretFile, writeSecretFile, type CardPaths } from './card-files.js';
import { factoryPersonalise, openManufacturer, withGetResponse } from './manufacturer.js';
import { openCardThread } from './card-thread.js';

export const DEFAULT_IDENTITY = 'default';

/**
 * The ALPN policy `card init` gives a new card: HTTPS clients and libcoap's certificate clients
 * (which offer only "coap", RFC 8323 §8.2) both connect to a fresh card.
 */
export const INIT_ALPN: readonly string[] = ['http/1.1', 'coap'];

export interface InitOptions {
  readonly cardDir: string;
  readonly caDir?: string;
  /** The local manufacturer (CA, master key): default `<card-dir>/../manufacturer`, made on first use. */
  readonly manufacturerDir?: string;
  readonly cardKey?: string;
  readonly pinFile?: string;
  readonly keyType?: KeyTypeName;
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
  /** The card UID (hex) the factory wrote into its security domain. */
  readonly uid: string;
  readonly manufacturerDir: string;
  /** The transport key id of the manufacturer master key (manifests; `operator init --manufacturer-keys`). */
  readonly transportKeyId: string;
}

/** The default manufacturer folder of a card: next to its CA folder. */
export function defaultManufacturerDir(cardDir: string): string {
  return join(dirname(resolve(cardDir)), 'manufacturer');
}

/**
 * A new emulated card and its host-side files (cardPaths): master key, user PIN, operator PIN and
 * PUK (random; 0600). Its security domain is in OP_READY, for the factory. Refuses existing files.
 */
export function createCardFiles(paths: CardPaths): { card: EmulatedCard; operatorPin: string } {
  for (const p of [paths.dir, paths.keyFile, paths.pinFile, paths.adminFile]) {
    if (existsSync(p)) throw new SetlsError('ERR_CARD_EXISTS', `${p} already exists: refusing to overwrite a card (remove it first)`);
  }
  const userPin = randomDigits(6);
  const operatorPin = randomDigits(8);
  const puk = randomDigits(8);
  const masterKey = newMasterKey(paths.keyFile);
  const card = EmulatedCard.create({ dir: paths.dir, masterKey, userPin, operatorPin, puk });
  masterKey.fill(0);
  writeSecretFile(paths.pinFile, userPin + '\n');
  writeSecretFile(paths.adminFile, JSON.stringify({ operatorPin, puk }, null, 2) + '\n');
  return { card, operatorPin };
}

export async function initCard(opts: InitOptions): Promise<InitResult> {
  const paths = cardPaths(opts.cardDir, { cardKey: opts.cardKey, pinFile: opts.pinFile, caDir: opts.caDir });
  const keyType = opts.keyType ?? 'p256';
  if (!(keyType in KeyType)) throw new SetlsError('ERR_CLI_KEY_TYPE', `unsupported key type ${keyType} (use ${Object.keys(KeyType).join(' or ')})`);
  const { card, operatorPin } = createCardFiles(paths);

  const transport = new InProcessTransport((apdu) => card.process(apdu));
  const client = new CardClient(transport);
  try {
    // The factory: UID, attestation key certified by the manufacturer, factory SCP03 keys, sealed.
    const manufacturer = await openManufacturer(opts.manufacturerDir ?? defaultManufacturerDir(opts.cardDir));
    const factory = await factoryPersonalise(withGetResponse((a) => transport.transmit(a)), manufacturer);
    await client.select();
    await client.verifyPin(operatorPin, 'operator');
    const ca = await openLocalCa(paths.caDir);
    const { spki, leaf } = await personalise(client, ca, {
      label: DEFAULT_IDENTITY,
      keyType,
      dnsNames: opts.dnsNames ?? ['localhost'],
      ipAddresses: opts.ipAddresses ?? ['127.0.0.1'],
    });
    await client.putPolicy({ alpn: [...INIT_ALPN] });
    // The operator's clock at personalisation sets the card's time floor (host times move it within bounds).
    await client.setClock(Math.floor(Date.now() / 1000));
    const info = await client.cardInfo();
    return {
      paths,
      caCertPath: ca.certPath,
      caFingerprint: ca.fingerprint,
      serial: info.serial,
      leafFingerprint: fingerprintOf(leaf),
      leafPem: new X509Certificate(leaf).toString(),
      spki,
      uid: toHex(factory.uid),
      manufacturerDir: manufacturer.dir,
      transportKeyId: manufacturer.transportKeyId,
    };
  } finally {
    await transport.close();
    card.close();
  }
}

export interface IdentitySpec {
  readonly label: string;
  readonly keyType: KeyTypeName;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

/**
 * Gives the card an identity through APDUs (operator PIN already verified): the key pair is
 * generated inside the card, the card signs a CSR, the CA certifies it, the chain goes back in.
 */
export async function personalise(client: CardClient, ca: LocalCa, id: IdentitySpec): Promise<{ spki: Uint8Array; leaf: Uint8Array }> {
  if (id.dnsNames.length === 0 && id.ipAddresses.length === 0) {
    throw new SetlsError('ERR_CLI_NAMES', `identity '${id.label}' needs at least one DNS name or IP address`);
  }
  const spki = await client.generateKey(id.label, id.keyType);
  const csr = await client.getCsr({ label: id.label, commonName: id.dnsNames[0] ?? id.ipAddresses[0]!, dnsNames: id.dnsNames, ipAddresses: id.ipAddresses });
  const leaf = await ca.sign(csr, { dnsNames: id.dnsNames, ipAddresses: id.ipAddresses });
  await client.putChain(id.label, [leaf]);
  return { spki, leaf };
}

/** Reads the operator PIN written by `card init`. */
export function readOperatorPin(paths: CardPaths): string {
  const doc = JSON.parse(readSecretFile(paths.adminFile, 'operator PIN')) as { operatorPin?: unknown };
  if (typeof doc.operatorPin !== 'string') throw new SetlsError('ERR_CLI_SECRET_FORMAT', `${paths.adminFile} has no operatorPin`);
  return doc.operatorPin;
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
  const paths = existingCard(opts.cardDir, opts.cardKey);
  const card = EmulatedCard.open({ dir: paths.dir, masterKey: readMasterKey(paths.keyFile) });
  return { transport: traced(new InProcessTransport((apdu) => card.process(apdu)), opts), card };
}

/** The paths of an existing card folder; ERR_CARD_MISSING (with the command that makes one) otherwise. */
function existingCard(cardDir: string, cardKey: string | undefined): CardPaths {
  const paths = cardPaths(cardDir, { cardKey });
  if (!existsSync(paths.dir)) {
    throw new SetlsError('ERR_CARD_MISSING', `no card in ${paths.dir} (create one with 'setls card init --card-dir ${cardDir}')`);
  }
  return paths;
}

/** With `trace`, every APDU goes to `traceSink` (default: stderr). */
function traced(transport: CardTransport, opts: { trace?: boolean | undefined; traceSink?: ((line: string) => void) | undefined }): CardTransport {
  return opts.trace ? new TracingTransport(transport, opts.traceSink ?? ((l) => process.stderr.write(l + '\n'))) : transport;
}

/** An emulated card folder opened on this thread or in a worker thread of its own. */
export interface OpenedCardFolder {
  readonly transport: CardTransport;
  /** The card's Answer To Reset. */
  readonly atr: Uint8Array;
  /** Lets the card write its state and release its folder (and, threaded, ends its thread). */
  close(): void | Promise<void>;
}

/** Opens an existing emulated card, in-process or (`thread`) in a worker thread of its own (cli/card-thread.ts). */
export async function openCardFolder(opts: {
  cardDir: string;
  cardKey?: string | undefined;
  thread?: boolean | undefined;
  trace?: boolean | undefined;
  traceSink?: ((line: string) => void) | undefined;
}): Promise<OpenedCardFolder> {
  if (!opts.thread) {
    const { transport, card } = openCard({ cardDir: opts.cardDir, ...(opts.cardKey ? { cardKey: opts.cardKey } : {}), ...(opts.trace ? { trace: true } : {}), ...(opts.traceSink ? { traceSink: opts.traceSink } : {}) });
    return { transport, atr: card.atr, close: () => card.close() };
  }
  existingCard(opts.cardDir, opts.cardKey);
  const t = await openCardThread({ cardDir: opts.cardDir, ...(opts.cardKey ? { cardKey: opts.cardKey } : {}) });
  return { transport: traced(t.transport, opts), atr: t.atr, close: () => t.close() };
}

/** Writes a PEM file readable by clients (the CA is public). */
export function writePublicFile(path: string, text: string): void {
  writeFileSync(path, text);
  chmodSync(path, 0o644);
}
