/**
 * How the CLI reaches a card for administration, and how a serving process lets it in:
 *  - `openCardForAdmin`: the card folder opened in-process (taking its lock); when another setls
 *    process owns it (ERR_CARD_LOCKED), its admin socket (`<card-dir>/admin.sock`), authenticated
 *    with the operator PIN file; with no socket there, the lock error naming the holder, and what to do.
 *  - `startAdminSocket`: the serving side (serve https / serve coap / demo) — the relay on its own
 *    logical channel (transport/admin-relay.ts), when the operator PIN file is at hand.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SetlsError } from '../bytes/index.js';
import type { EmulatedCard } from '../card/index.js';
import type { CardTransport } from '../transport/index.js';
import { ADMIN_SOCKET_FILE, AdminSocketTransport } from '../transport/admin-socket.js';
import { AdminRelay } from '../transport/admin-relay.js';
import { cardPaths } from './card-files.js';
import { openCard, readOperatorPin } from './card-setup.js';

export interface AdminCard {
  readonly transport: CardTransport;
  /** The card object when this process opened the folder itself. */
  readonly card: EmulatedCard | undefined;
  /** The PID of the serving process whose admin socket carries the APDUs (undefined: in-process). */
  readonly serverPid: number | undefined;
  close(): Promise<void>;
}

export function adminSocketPath(cardDir: string): string {
  return join(cardPaths(cardDir).dir, ADMIN_SOCKET_FILE);
}

/**
 * The card of an administrative command. In-process when the folder is free; through the owner's
 * admin socket when a running setls process holds it (a note goes to stderr: the change applies to
 * that process's card at once).
 */
export async function openCardForAdmin(o: { cardDir: string; cardKey?: string; quiet?: boolean }): Promise<AdminCard> {
  try {
    const { transport, card } = openCard({ cardDir: o.cardDir, cardKey: o.cardKey });
    return {
      transport,
      card,
      serverPid: undefined,
      async close() {
        await transport.close();
        card.close();
      },
    };
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_CARD_LOCKED') throw e;
    const lockErr = e as SetlsError;
    const path = adminSocketPath(o.cardDir);
    if (!existsSync(path)) {
      throw new SetlsError('ERR_CARD_LOCKED', `${lockErr.message}; it offers no admin socket (${path}): stop it, then run this command again`);
    }
    const paths = cardPaths(o.cardDir, { cardKey: o.cardKey });
    let pin: string;
    try {
      pin = readOperatorPin(paths);
    } catch (pe) {
      throw new SetlsError('ERR_CARD_LOCKED', `${lockErr.message}; reaching it through its admin socket needs the operator PIN file: ${(pe as Error).message}`);
    }
    let transport: AdminSocketTransport;
    try {
      transport = await AdminSocketTransport.connect(path, { operatorPin: pin });
    } catch (ce) {
      throw new SetlsError((ce as { code?: string }).code === 'ERR_ADMIN_SOCKET_AUTH' ? 'ERR_ADMIN_SOCKET_AUTH' : 'ERR_CARD_LOCKED', `${lockErr.message}; its admin socket ${path}: ${(ce as Error).message}`);
    }
    if (!o.quiet) process.stderr.write(`setls: the card is served by process ${transport.serverPid}; applying this through its admin socket\n`);
    return { transport, card: undefined, serverPid: transport.serverPid, close: () => transport.close() };
  }
}

/**
 * The admin socket of a serving process for the card in `cardDir`, relaying to `transport`. Returns
 * undefined (and says why on `log`) when it cannot be offered: no operator PIN file next to the
 * card, a path too long for a unix socket, or no free logical channel on the card.
 */
export async function startAdminSocket(cardDir: string, transport: CardTransport, log: (line: string) => void): Promise<AdminRelay | undefined> {
  const paths = cardPaths(cardDir);
  const socketPath = adminSocketPath(cardDir);
  if (!existsSync(paths.adminFile)) {
    log(`no admin socket: ${paths.adminFile} is not here; administrative commands must wait until this server stops`);
    return undefined;
  }
  try {
    return await AdminRelay.start({ socketPath, transport, operatorPin: () => readOperatorPin(paths), log });
  } catch (e) {
    log(`no admin socket: ${(e as Error).message}; administrative commands must wait until this server stops`);
    return undefined;
  }
}
