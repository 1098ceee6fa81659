/**
 * `setls card change-pin` and `setls card unblock`: a new PIN for the card — random digits (or read
 * from --new-pin-file, never argv) — set through CHANGE-PIN (with the current PIN) or UNBLOCK-PIN
 * (with the PUK of <card-dir>.admin.json), then written where the CLI reads it: the user PIN to
 * <card-dir>.pin (or --pin-file), the operator PIN into <card-dir>.admin.json, both mode 0600.
 *
 * Crash safety: the new PIN is written to `<file>.new` BEFORE the card changes it and renamed over
 * the old file after; a leftover `.new` (the card may hold either PIN) stops the next run with what
 * to do. A card served by another process is refused: that process presents the current PIN again
 * after a card reset, and the old PIN would cost a try each time.
 * imports host/ (CardClient), bytes/, api/pin.ts and cli/.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { SetlsError } from '../bytes/index.js';
import { CardClient, type PinKind } from '../host/index.js';
import { resolvePin } from '../api/pin.js';
import { openCardForAdmin } from './admin-access.js';
import { cardPaths, randomDigits, readSecretFile, writeSecretFile, type CardPaths } from './card-files.js';

interface PinCommandOptions {
  cardDir: string;
  cardKey?: string;
  which: PinKind;
  pinFile?: string;
  newPinFile?: string;
}

interface AdminFile {
  operatorPin: string;
  puk: string;
}

function readAdminFile(paths: CardPaths): AdminFile {
  const doc = JSON.parse(readSecretFile(paths.adminFile, 'operator PIN and PUK')) as Partial<AdminFile>;
  if (typeof doc.operatorPin !== 'string' || typeof doc.puk !== 'string') {
    throw new SetlsError('ERR_CLI_SECRET_FORMAT', `${paths.adminFile} must hold operatorPin and puk`);
  }
  return { operatorPin: doc.operatorPin, puk: doc.puk };
}

/** The new PIN: from --new-pin-file, else random (6 digits for the user PIN, 8 for the operator's). */
function newPin(o: PinCommandOptions): string {
  const pin = o.newPinFile !== undefined ? readSecretFile(o.newPinFile, 'new PIN') : randomDigits(o.which === 'user' ? 6 : 8);
  if (!/^\d{4,8}$/.test(pin)) throw new SetlsError('ERR_CLI_PIN_FORMAT', 'a PIN is 4 to 8 digits');
  return pin;
}

/** Where the new PIN is kept, and its content. */
function target(o: PinCommandOptions, paths: CardPaths, pin: string): { file: string; content: string } {
  if (o.which === 'user') return { file: paths.pinFile, content: pin + '\n' };
  return { file: paths.adminFile, content: JSON.stringify({ ...readAdminFile(paths), operatorPin: pin }, null, 2) + '\n' };
}

/** Opens the card (in this process only), writes `<file>.new`, runs `change`, then renames the file over the old one. */
async function replacePin(o: PinCommandOptions, what: string, change: (client: CardClient, pin: string) => Promise<void>): Promise<string> {
  const paths = cardPaths(o.cardDir, { cardKey: o.cardKey, ...(o.pinFile !== undefined ? { pinFile: o.pinFile } : {}) });
  const pin = newPin(o);
  const t = target(o, paths, pin);
  const pending = `${t.file}.new`;
  if (existsSync(pending)) {
    throw new SetlsError(
      'ERR_CLI_PIN_PENDING',
      `${pending} is left from a ${what} that did not finish: the card holds either the PIN in it or the one in ${t.file}. ` +
        `Check with 'setls card info' (tries left), keep the right file, remove the other, then run this again`,
    );
  }
  const opened = await openCardForAdmin({ cardDir: o.cardDir, cardKey: o.cardKey, quiet: true });
  try {
    if (opened.serverPid !== undefined) {
      throw new SetlsError(
        'ERR_CLI_CARD_SERVED',
        `the card is served by process ${opened.serverPid}, which would present the old PIN again after a card reset: stop it (kill ${opened.serverPid}), then run this again`,
      );
    }
    writeSecretFile(pending, t.content);
    try {
      const client = new CardClient(opened.transport);
      await client.select();
      await change(client, pin);
    } catch (e) {
      rmSync(pending, { force: true });
      throw e;
    }
    renameSync(pending, t.file);
    return t.file;
  } finally {
    await opened.close();
  }
}

export function registerPinCommands(card: Command, defaultCardDir: string): void {
  const common = (cmd: Command): Command =>
    cmd
      .option('--card-dir <dir>', 'card state folder', defaultCardDir)
      .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
      .addOption(new Option('--which <pin>', 'which PIN').choices(['user', 'operator']).default('user'))
      .option('--pin-file <file>', 'the user PIN file to update (default: <card-dir>.pin)')
      .option('--new-pin-file <file>', 'take the new PIN (4–8 digits) from this file, mode 0600 (default: random digits)');

  common(
    card
      .command('change-pin')
      .description('change the user PIN (or --which operator) with the current one; the new PIN (random) is written to <card-dir>.pin (<card-dir>.admin.json)'),
  ).action(async (o: PinCommandOptions) => {
    const paths = cardPaths(o.cardDir, { cardKey: o.cardKey });
    const current =
      o.which === 'user'
        ? resolvePin({ cardDir: o.cardDir, ...(o.pinFile !== undefined ? { pinFile: o.pinFile } : {}) }, { warn: (m) => console.error(`setls: ${m}`), pinFileName: '--pin-file' }).pin
        : readAdminFile(paths).operatorPin;
    const file = await replacePin(o, 'change-pin', (client, pin) => client.changePin(current, pin, o.which));
    console.log(`${o.which} PIN changed; the new PIN is in ${file} (0600)`);
  });

  common(
    card
      .command('unblock')
      .description('unblock the user PIN (or --which operator) with the PUK of <card-dir>.admin.json; the new PIN (random) is written to <card-dir>.pin (<card-dir>.admin.json)'),
  ).action(async (o: PinCommandOptions) => {
    const puk = readAdminFile(cardPaths(o.cardDir, { cardKey: o.cardKey })).puk;
    const file = await replacePin(o, 'unblock', (client, pin) => client.unblockPin(puk, pin, o.which));
    console.log(`${o.which} PIN unblocked (tries reset); the new PIN is in ${file} (0600)`);
  });
}
