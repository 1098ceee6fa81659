/**
 * `setls/card`: make and open emulated card folders from code.
 *
 *   const { cardDir, caCertPath } = await initCard({ cardDir: '.setls/card' });   // = setls card init
 *   const card = await openCard({ cardDir });       // → { transport, paths, close() }
 *   try { … new CardClient(card.transport) … } finally { await card.close(); }
 *
 * A card folder is `DIR/` (the sealed state) next to `DIR.key` (master key), `DIR.pin` (user PIN),
 * `DIR.admin.json` (operator PIN and PUK) and `DIR/../ca/` (the local CA); one process holds a
 * folder at a time (ERR_CARD_LOCKED names the holder).
 * imports cli/ (card set-up and files) and transport/.
 */
import { cardPaths, type CardPaths } from '../cli/card-files.js';
import { initCard as initCardFolder, openCardFolder } from '../cli/card-setup.js';
import type { CardTransport } from '../transport/index.js';
import type { KeyTypeName } from '../host/index.js';

export { cardPaths, type CardPaths };

export interface OpenCardOptions {
  /** The card folder (made by `setls card init` or initCard()). */
  readonly cardDir: string;
  /** The master key file (default `<cardDir>.key`). */
  readonly cardKey?: string;
  /** Print every APDU as annotated hex (PINs and keys redacted): true for stderr, or a sink. */
  readonly trace?: boolean | ((line: string) => void);
  /**
   * Run the card in a worker thread of its own (as `serve https --card-thread`): its master key,
   * state and garbage stay on that thread; APDU bytes cross through shared memory. Default false.
   */
  readonly thread?: boolean;
}

export interface OpenedCard {
  /** APDU bytes in, APDU bytes out: give it to a TlsTandem, a CardClient, createServer({ transport }). */
  readonly transport: CardTransport;
  readonly paths: CardPaths;
  /** The card's Answer To Reset. */
  readonly atr: Uint8Array;
  /** Closes the transport and the card, and lets go of the folder (its lock). Call it in `finally`. */
  close(): Promise<void>;
}

/** Opens an emulated card folder in this process (taking its lock), on this thread or (`thread`) a worker thread of its own. */
export async function openCard(o: OpenCardOptions): Promise<OpenedCard> {
  if (!o || typeof o.cardDir !== 'string') throw new TypeError('openCard needs { cardDir }');
  const opened = await openCardFolder({
    cardDir: o.cardDir,
    cardKey: o.cardKey,
    thread: o.thread,
    trace: o.trace !== undefined && o.trace !== false,
    traceSink: typeof o.trace === 'function' ? o.trace : undefined,
  });
  const { transport } = opened;
  let closed = false;
  return {
    transport,
    paths: cardPaths(o.cardDir, { cardKey: o.cardKey }),
    atr: opened.atr,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await transport.close();
      } finally {
        await opened.close();
      }
    },
  };
}

export interface InitCardOptions {
  readonly cardDir: string;
  /** The local CA folder (default `<cardDir>/../ca`, created when missing). */
  readonly caDir?: string;
  readonly keyType?: KeyTypeName;
  /** Names in the card's certificate (default localhost and 127.0.0.1). */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

export interface InitCardResult {
  readonly cardDir: string;
  readonly paths: CardPaths;
  /** What clients trust (`curl --cacert`). */
  readonly caCertPath: string;
  readonly serial: string;
  /** The card identity's certificate (PEM); its key never left the card. */
  readonly certificatePem: string;
}

/** Creates a card as `setls card init` does: random PINs in 0600 files, key generated inside, certified by the local CA. */
export async function initCard(o: InitCardOptions): Promise<InitCardResult> {
  if (!o || typeof o.cardDir !== 'string') throw new TypeError('initCard needs { cardDir }');
  const r = await initCardFolder({
    cardDir: o.cardDir,
    ...(o.caDir !== undefined ? { caDir: o.caDir } : {}),
    ...(o.keyType !== undefined ? { keyType: o.keyType } : {}),
    ...(o.dnsNames !== undefined ? { dnsNames: o.dnsNames } : {}),
    ...(o.ipAddresses !== undefined ? { ipAddresses: o.ipAddresses } : {}),
  });
  return { cardDir: r.paths.dir, paths: r.paths, caCertPath: r.caCertPath, serial: r.serial, certificatePem: r.leafPem };
}
