/**
 * `setls card serve`: the emulated card as its own process, reachable only through pcscd's vpcd
 * driver (the vsmartcard vpcd protocol). Default: connect to vpcd at 127.0.0.1:35963 (reconnecting
 * while pcscd is away); `--reversed`: listen on 127.0.0.1 on both slot ports and let pcscd connect
 * (one peer per slot; a second connection is refused and logged; each connection is a power-on).
 * vpcd has no authentication: a non-loopback --vpcd-host is refused unless --allow-remote-vpcd,
 * which logs a warning (docs/pcsc.md, trust model).
 */
import { EmulatedCard } from '../card/index.js';
import { VpcdCardLink, VpcdCardServer, checkVpcdHost, isLoopbackHost, VPCD_DEFAULT_PORT, type VpcdCard } from '../transport/vpcd.js';
import { cardPaths, readMasterKey } from './card-files.js';
import { SetlsError } from '../bytes/index.js';
import { existsSync } from 'node:fs';

export interface CardServeOptions {
  cardDir: string;
  cardKey?: string;
  vpcdHost?: string;
  vpcdPort?: number;
  reversed?: boolean;
  /** Accept a non-loopback --vpcd-host (vpcd has no authentication); logs a warning. */
  allowRemoteVpcd?: boolean;
  /** Name in the ATR historical bytes. Default "setls". */
  name?: string;
  /** Log lines (default: stderr). */
  log?: (line: string) => void;
}

export interface RunningCard {
  readonly card: EmulatedCard;
  stop(): Promise<void>;
}

export async function startCardServe(o: CardServeOptions): Promise<RunningCard> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const host = o.vpcdHost ?? '127.0.0.1';
  const allowRemote = o.allowRemoteVpcd === true;
  // Before the card is opened: a refused address must not touch the card folder.
  checkVpcdHost(host, allowRemote, o.reversed ? 'listen for vpcd on' : 'connect the card to vpcd at');
  const paths = cardPaths(o.cardDir, { cardKey: o.cardKey });
  if (!existsSync(paths.dir)) throw new SetlsError('ERR_CARD_MISSING', `no card in ${paths.dir} (create one with 'setls card init')`);
  const card = EmulatedCard.open({ dir: paths.dir, masterKey: readMasterKey(paths.keyFile), ...(o.name !== undefined ? { atrName: o.name } : {}) });
  const vcard: VpcdCard = {
    atr: card.atr,
    process: (apdu) => card.process(apdu),
    reset: () => card.reset(),
  };
  const port = o.vpcdPort ?? VPCD_DEFAULT_PORT;
  if (!isLoopbackHost(host)) {
    log(
      `setls card: WARNING: vpcd ${o.reversed ? 'listens on' : 'connects to'} ${host} (--allow-remote-vpcd): vpcd has no authentication; ` +
        'whoever reaches this address can drive the card and its PINs. Prefer 127.0.0.1 in a private network namespace (docs/pcsc.md).',
    );
  }
  if (o.reversed) {
    const srv = new VpcdCardServer(vcard, { host, port, allowRemote });
    srv.on('connected', (slot: number, peer: string) => log(`setls card: pcscd connected to slot ${slot} from ${peer} (card powered on)`));
    srv.on('disconnected', (slot: number, peer: string) => log(`setls card: pcscd (${peer}) left slot ${slot} (card reset)`));
    srv.on('refused', (slot: number, peer: string) => log(`setls card: refused a second vpcd connection to slot ${slot} from ${peer}: the slot already has its reader`));
    await srv.listen();
    log(`setls card: listening for vpcd on ${host}:${port} and :${port + 1} (reversed mode, one reader per slot)`);
    return {
      card,
      async stop() {
        await srv.close();
        card.close();
      },
    };
  }
  const link = new VpcdCardLink(vcard, { host, port, allowRemote });
  link.on('connected', (where: string) => log(`setls card: inserted (connected to vpcd at ${where})`));
  link.on('disconnected', () => log('setls card: removed (vpcd connection closed); reconnecting'));
  link.start();
  log(`setls card: connecting to vpcd at ${host}:${port}`);
  return {
    card,
    async stop() {
      await link.stop();
      card.close();
    },
  };
}

export async function runCardServe(o: CardServeOptions): Promise<void> {
  const running = await startCardServe(o);
  // The vpcd link's retry timer is unref'd (embedders decide their own lifetime); the command runs
  // until a signal, even while no vpcd is there to connect to.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const stop = (): void => {
    clearInterval(keepAlive);
    void running.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
