/**
 * `setls card identity-policy | add-anchor | clear-anchors | add-psk | delete-psk | reset-clock`: the
 * per-identity policy (client authentication, TLS-Tandem session export, exporter labels), client-CA
 * trust anchors, external PSKs and the card's time floor, installed through APDUs with the operator
 * PIN of <card-dir>.admin.json — in-process, or through the admin socket of the setls process that
 * serves the card (admin-access.ts). Also the parsers of `card policy`'s TLS 1.2 / version / ticket options.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { SetlsError, fromHex, toHex } from '../bytes/index.js';
import { CardClient, type ClientAuth, type PskHash } from '../host/index.js';
import { codeOf, TLS12_SUITES } from '../registry/tls-names.js';
import { readOperatorPin } from './card-setup.js';
import { cardPaths, readSecretFile } from './card-files.js';
import { openCardForAdmin } from './admin-access.js';

/** `--versions 1.3,1.2` → [0x0304, 0x0303]. */
export function parseVersions(v: string): number[] {
  const map: Record<string, number> = { '1.3': 0x0304, '1.2': 0x0303, 'TLSv1.3': 0x0304, 'TLSv1.2': 0x0303 };
  const out = v.split(',').map((x) => {
    const c = map[x.trim()];
    if (c === undefined) throw new RangeError(`unknown TLS version '${x}' (use 1.3 and/or 1.2)`);
    return c;
  });
  if (out.length === 0 || new Set(out).size !== out.length) throw new RangeError('versions must be a non-empty list without repeats');
  return out;
}

/** `--tls12-suites A,B` (IANA names, e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) → code points. */
export function parseTls12Suites(v: string): number[] {
  return v.split(',').map((n) => codeOf(TLS12_SUITES, n.trim(), 'TLS 1.2 cipher suite'));
}

export function parseOnOff(v: string, what: string): boolean {
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new RangeError(`${what} must be 'on' or 'off'`);
}

/** Reads a PEM (or DER) certificate file and checks it is a CA certificate. */
export function readCaCertificate(path: string): Uint8Array {
  const raw = readFileSync(path);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(raw);
  } catch (e) {
    throw new SetlsError('ERR_CLI_CERTIFICATE', `${path} is not a certificate: ${(e as Error).message}`);
  }
  if (!cert.ca) throw new SetlsError('ERR_CLI_CERTIFICATE', `${path} is not a CA certificate (basicConstraints CA:TRUE missing)`);
  return new Uint8Array(cert.raw);
}

/** A PSK key file: hex text (16..64 bytes), mode 0600 like the other secret files. */
export function readPskKeyFile(path: string): Uint8Array {
  const text = readSecretFile(path, 'PSK key').replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})+$/.test(text)) throw new SetlsError('ERR_CLI_SECRET_FORMAT', `PSK key file ${path} must hold the key in hex`);
  const key = fromHex(text);
  if (key.length < 16 || key.length > 64) throw new SetlsError('ERR_CLI_SECRET_FORMAT', `a PSK is 16..64 bytes, ${path} holds ${key.length}`);
  return key;
}

interface CardOpts {
  cardDir: string;
  cardKey?: string;
}

/** Opens the card (or reaches the process serving it), verifies the operator PIN, runs `fn`, closes. */
async function asOperator<T>(o: CardOpts, fn: (client: CardClient) => Promise<T>): Promise<T> {
  const paths = cardPaths(o.cardDir, { cardKey: o.cardKey });
  const opened = await openCardForAdmin({ cardDir: o.cardDir, cardKey: o.cardKey });
  try {
    const client = new CardClient(opened.transport);
    await client.select();
    await client.verifyPin(readOperatorPin(paths), 'operator');
    return await fn(client);
  } finally {
    await opened.close();
  }
}

/** `--time`: an ISO date/time, Unix seconds, `now`, or `none` (unset the floor). */
export function parseClockTime(v: string | undefined): number {
  if (v === undefined || v === 'now') return Math.floor(Date.now() / 1000);
  if (v === 'none' || v === '0') return 0;
  if (/^\d+$/.test(v)) return Number(v);
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new RangeError(`--time: '${v}' is not an ISO date/time, Unix seconds, 'now' or 'none'`);
  return Math.floor(ms / 1000);
}

async function printIdentityPolicy(client: CardClient, label: string): Promise<void> {
  const id = await client.identityInfo(label);
  console.log(
    JSON.stringify(
      {
        label,
        clientAuth: id.clientAuth ?? 'none',
        exportAllowed: id.exportAllowed ?? false,
        exporterLabels: id.exporterLabels,
        trustAnchors: id.trustAnchors.map((der) => {
          const c = new X509Certificate(der);
          return { subject: c.subject.replace(/\n/g, ', '), sha256: c.fingerprint256 };
        }),
      },
      null,
      2,
    ),
  );
}

export function registerCardAdminCommands(card: Command, defaultCardDir: string): void {
  card
    .command('identity-policy')
    .description("set an identity's client authentication, session export and exporter labels (operator PIN from <card-dir>.admin.json)")
    .requiredOption('--label <label>', 'identity label')
    .option('--card-dir <dir>', 'card state folder', defaultCardDir)
    .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
    .addOption(new Option('--client-auth <mode>', 'client certificates: none, optional or required').choices(['none', 'optional', 'required']))
    .addOption(new Option('--export <on|off>', 'allow TLS-Tandem session export (serve --record-layer host)').choices(['on', 'off']))
    .option('--exporter-label <label...>', 'labels the EXPORTER command may derive (replaces the list)')
    .action(async (o: CardOpts & { label: string; clientAuth?: ClientAuth; export?: 'on' | 'off'; exporterLabel?: string[] }) => {
      await asOperator(o, async (client) => {
        if (o.clientAuth !== undefined || o.export !== undefined || o.exporterLabel !== undefined) {
          await client.putIdentityPolicy({
            label: o.label,
            ...(o.clientAuth !== undefined ? { clientAuth: o.clientAuth } : {}),
            ...(o.export !== undefined ? { exportAllowed: o.export === 'on' } : {}),
            ...(o.exporterLabel !== undefined ? { exporterLabels: o.exporterLabel } : {}),
          });
        }
        await printIdentityPolicy(client, o.label);
      });
    });

  card
    .command('add-anchor')
    .description("trust a client CA for an identity's mutual TLS (operator PIN from <card-dir>.admin.json)")
    .requiredOption('--label <label>', 'identity label')
    .requiredOption('--ca <file>', 'CA certificate (PEM or DER)')
    .option('--card-dir <dir>', 'card state folder', defaultCardDir)
    .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
    .action(async (o: CardOpts & { label: string; ca: string }) => {
      const der = readCaCertificate(o.ca);
      await asOperator(o, async (client) => {
        await client.putTrustAnchor(o.label, der);
        await printIdentityPolicy(client, o.label);
      });
    });

  card
    .command('clear-anchors')
    .description("remove every client CA of an identity (operator PIN from <card-dir>.admin.json)")
    .requiredOption('--label <label>', 'identity label')
    .option('--card-dir <dir>', 'card state folder', defaultCardDir)
    .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
    .action(async (o: CardOpts & { label: string }) => {
      await asOperator(o, async (client) => {
        await client.clearTrustAnchors(o.label);
        await printIdentityPolicy(client, o.label);
      });
    });

  card
    .command('add-psk')
    .description('install an external PSK in the card (TLS 1.3 psk_ke/psk_dhe_ke, TLS 1.2 PSK suites); the key file holds hex, mode 0600')
    .requiredOption('--identity <id>', 'PSK identity (UTF-8)')
    .requiredOption('--key-file <file>', 'file with the key in hex (16..64 bytes), mode 0600')
    .addOption(new Option('--hash <alg>', 'hash bound to the PSK (TLS 1.3)').choices(['sha256', 'sha384']).default('sha256'))
    .option('--card-dir <dir>', 'card state folder', defaultCardDir)
    .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
    .action(async (o: CardOpts & { identity: string; keyFile: string; hash: PskHash }) => {
      const key = readPskKeyFile(o.keyFile);
      try {
        await asOperator(o, async (client) => {
          await client.putPsk({ identity: o.identity, key, hash: o.hash });
          const ids = (await client.cardInfo()).pskIdentities.map((b) => Buffer.from(b).toString('utf8'));
          console.log(`PSK '${o.identity}' (${key.length} bytes, ${o.hash}) installed; the card holds PSKs: ${ids.join(', ')}`);
        });
      } finally {
        key.fill(0);
      }
    });

  card
    .command('reset-clock')
    .description("reset the card's time floor (the latest time it trusts; host times far below it are refused) — operator PIN from <card-dir>.admin.json")
    .option('--card-dir <dir>', 'card state folder', defaultCardDir)
    .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
    .option('--time <iso>', "the new floor: ISO date/time, Unix seconds, 'now' (default) or 'none' (unset: the next host time sets it)")
    .action(async (o: CardOpts & { time?: string }) => {
      const t = parseClockTime(o.time);
      if (t > 0xffffffff) throw new RangeError('--time: beyond 2106');
      await asOperator(o, async (client) => {
        await client.setClock(t);
        const info = await client.cardInfo();
        console.log(info.lastTime ? `card time floor set to ${new Date(info.lastTime * 1000).toISOString()}` : 'card time floor unset (the next host time sets it)');
      });
    });

  card
    .command('delete-psk')
    .description('remove an external PSK from the card')
    .requiredOption('--identity <id>', 'PSK identity (UTF-8)')
    .option('--card-dir <dir>', 'card state folder', defaultCardDir)
    .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
    .action(async (o: CardOpts & { identity: string }) => {
      await asOperator(o, async (client) => {
        await client.deletePsk(o.identity);
        const ids = (await client.cardInfo()).pskIdentities.map((b) => toHex(b));
        console.log(`PSK '${o.identity}' deleted; ${ids.length} PSK(s) left`);
      });
    });
}
