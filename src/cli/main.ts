#!/usr/bin/env node
/**
 * The `setls` command: the one place that wires a card, a transport and a server together.
 */
import { Command, Option } from 'commander';
import { initCard, personalise, readOperatorPin } from './card-setup.js';
import { openCardForAdmin } from './admin-access.js';
import { runServeHttps, type ServeHttpsOptions } from './serve.js';
import { runServeCoap } from './serve-coap.js';
import { runCardServe } from './card-serve.js';
import { runAgent } from './agent.js';
import { cardPaths } from './card-files.js';
import { CardClient, KeyType, type KeyTypeName } from '../host/index.js';
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fingerprintOf, openLocalCa } from '../pki/local-ca.js';
import { codeOf, groupName, GROUPS, suiteName, TLS13_SUITES, versionName } from '../registry/tls-names.js';
import { parseOnOff, parseTls12Suites, parseVersions, registerCardAdminCommands } from './card-admin.js';
import { registerOperatorCommands } from './operator-commands.js';
import { registerPinCommands } from './pin-commands.js';
import { cliLogger, logFormat } from './log.js';
import { registerOperatorQuickstart } from './operator-quickstart.js';
import { registerAuditCommands } from './audit-commands.js';
import { registerCampaignCommands } from './operator-campaigns.js';
import { registerFactoryCommands } from './card-factory.js';
import { LifecycleName, readSecurityDomain, withGetResponse } from './manufacturer.js';
import { CardLifecycle } from '../protocol/index.js';
import { SetlsError, toHex } from '../bytes/index.js';

const DEFAULT_CARD_DIR = '.setls/card';

// `setls card info | head` closes stdout early: that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

const program = new Command();
program
  .name('setls')
  .description('TLS servers that live inside secure elements')
  .version('0.1.0')
  .option('--log-format <format>', 'log lines on stderr: pretty (default on a terminal), json (default otherwise), auto; or SETLS_LOG_FORMAT');

/** The global --log-format (checked early: a typo fails before anything starts). */
function globalLogFormat(): string | undefined {
  const f = (program.opts() as { logFormat?: string }).logFormat;
  logFormat(f);
  return f;
}

const card = program.command('card').description('create and inspect emulated cards');

card
  .command('init')
  .description('create a card, generate its identity key inside it, and certify it with the local CA')
  .option('--card-dir <dir>', 'card state folder', DEFAULT_CARD_DIR)
  .addOption(new Option('--key <type>', 'identity key type').choices(['p256', 'rsa2048']).default('p256'))
  .option('--ca-dir <dir>', 'local CA folder (default: <card-dir>/../ca)')
  .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
  .option('--pin-file <file>', 'where to write the user PIN (default: <card-dir>.pin)')
  .option('--manufacturer-dir <dir>', 'the local manufacturer: its CA certifies the card attestation key, its master key gives the factory SCP03 keys (default: <card-dir>/../manufacturer, made on first use)')
  .action(async (o: { cardDir: string; key: KeyTypeName; caDir?: string; cardKey?: string; pinFile?: string; manufacturerDir?: string }) => {
    const r = await initCard({ cardDir: o.cardDir, keyType: o.key, caDir: o.caDir, cardKey: o.cardKey, pinFile: o.pinFile, manufacturerDir: o.manufacturerDir });
    console.log(`card created in ${r.paths.dir} (serial ${r.serial})`);
    console.log(`  security domain: UID ${r.uid}, attestation key made in the card and certified by ${r.manufacturerDir}/ca.crt, factory keys KVN 30 (transport key ${r.transportKeyId}), sealed`);
    console.log(`  identity 'default': ${KEY_NAMES[o.key]} key generated in the card, certificate ${r.leafFingerprint}`);
    console.log(`  master key: ${r.paths.keyFile} (0600)`);
    console.log(`  user PIN:   ${r.paths.pinFile} (0600)`);
    console.log(`  operator PIN and PUK: ${r.paths.adminFile} (0600)`);
    console.log(`  CA certificate: ${r.caCertPath}`);
    console.log(`  CA SHA-256 fingerprint: ${r.caFingerprint}`);
  });

card
  .command('info')
  .description('show a card: serial, identities, certificates, PIN tries left')
  .option('--card-dir <dir>', 'card state folder', DEFAULT_CARD_DIR)
  .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
  .option('--json', 'machine-readable output')
  .action(async (o: { cardDir: string; cardKey?: string; json?: boolean }) => {
    const opened = await openCardForAdmin({ cardDir: o.cardDir, cardKey: o.cardKey });
    const client = new CardClient(opened.transport);
    try {
      await client.select();
      const info = await client.cardInfo();
      const identities = [];
      for (const label of info.identities) {
        const id = await client.identityInfo(label);
        const certs = id.certificates.map((der) => {
          const c = new X509Certificate(der);
          return { subject: c.subject, issuer: c.issuer, subjectAltName: c.subjectAltName, validFrom: c.validFrom, validTo: c.validTo, sha256: fingerprintOf(der) };
        });
        const kt = (Object.keys(KeyType) as KeyTypeName[]).find((k) => KeyType[k] === id.keyType);
        identities.push({ label, keyType: kt ? KEY_NAMES[kt] : `type ${id.keyType}`, hostNames: id.hostNames, certificates: certs });
      }
      // The security domain (selected last: channel 0 then belongs to it).
      const sd = await readSecurityDomain(withGetResponse((a) => opened.transport.transmit(a)));
      const personalised = sd !== undefined && sd.uid !== undefined && sd.lifecycle !== CardLifecycle.opReady;
      const securityDomain = personalised
        ? { lifecycle: LifecycleName[sd.lifecycle] ?? sd.lifecycle.toString(16), kvns: sd.kvns.map((k) => k.toString(16)) }
        : 'no security domain personalised';
      const out = { cardDir: cardPaths(o.cardDir).dir, uid: personalised ? toHex(sd.uid!) : null, securityDomain, ...info, identities };
      if (o.json) {
        console.log(JSON.stringify(out, null, 2));
        return;
      }
      console.log(`card ${out.cardDir}`);
      console.log(`  applet ${info.version}, serial ${info.serial}`);
      if (typeof securityDomain === 'string') console.log(`  ${securityDomain}`);
      else console.log(`  security domain ${securityDomain.lifecycle}, UID ${out.uid}, SCP03 key sets ${securityDomain.kvns.join(', ')}`);
      console.log(`  tries left: user PIN ${info.userPinTries ?? '?'}, operator PIN ${info.operatorPinTries ?? '?'}, PUK ${info.pukTries ?? '?'}`);
      if (info.lastTime) console.log(`  time floor: ${new Date(info.lastTime * 1000).toISOString()} (host times far below it are refused; setls card reset-clock)`);
      for (const id of identities) {
        console.log(`  identity '${id.label}' (${id.keyType})${id.hostNames.length ? `, answers to ${id.hostNames.join(', ')}` : ''}`);
        for (const c of id.certificates) {
          console.log(`    subject ${c.subject.replace(/\n/g, ', ')}; SAN ${c.subjectAltName ?? '-'}; valid to ${c.validTo}`);
          console.log(`    SHA-256 ${c.sha256}`);
        }
        if (id.certificates.length === 0) console.log('    (no certificate installed)');
      }
    } finally {
      await opened.close();
    }
  });

card
  .command('add-identity')
  .description('add an identity (key generated inside the card, certified by the local CA); clients pick it by SNI')
  .requiredOption('--label <label>', 'identity label')
  .option('--card-dir <dir>', 'card state folder', DEFAULT_CARD_DIR)
  .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
  .option('--ca-dir <dir>', 'local CA folder (default: <card-dir>/../ca)')
  .addOption(new Option('--key <type>', 'key type').choices(['p256', 'rsa2048']).default('p256'))
  .option('--dns <name...>', 'DNS names for the certificate (SNI selects the identity by these)', [])
  .option('--ip <addr...>', 'IP addresses for the certificate', [])
  .action(async (o: { label: string; cardDir: string; cardKey?: string; caDir?: string; key: KeyTypeName; dns: string[]; ip: string[] }) => {
    const paths = cardPaths(o.cardDir, { cardKey: o.cardKey, caDir: o.caDir });
    const opened = await openCardForAdmin({ cardDir: o.cardDir, cardKey: o.cardKey });
    const client = new CardClient(opened.transport);
    try {
      await client.select();
      await client.verifyPin(readOperatorPin(paths), 'operator');
      const ca = await openLocalCa(paths.caDir);
      const { leaf } = await personalise(client, ca, { label: o.label, keyType: o.key, dnsNames: o.dns, ipAddresses: o.ip });
      console.log(`identity '${o.label}' (${KEY_NAMES[o.key]}) added; certificate ${fingerprintOf(leaf)}`);
    } finally {
      await opened.close();
    }
  });

card
  .command('policy')
  .description("set the card's TLS policy (operator PIN from <card-dir>.admin.json); prints the policy in force")
  .option('--card-dir <dir>', 'card state folder', DEFAULT_CARD_DIR)
  .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
  .option('--suites <list>', 'cipher suites in preference order, e.g. TLS_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256')
  .option('--groups <list>', 'groups in preference order: x25519, secp256r1')
  .addOption(new Option('--unknown-sni <rule>', 'an SNI that matches no identity').choices(['default', 'reject']))
  .option('--alpn <list>', "ALPN protocols in preference order ('' turns ALPN off)")
  .option('--key-update-after <records>', 'own KeyUpdate after this many records', (v) => parsePositive(v, 'record count'))
  .option('--tls12-suites <list>', 'TLS 1.2 suites in preference order (IANA names), e.g. TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,TLS_PSK_WITH_AES_128_GCM_SHA256')
  .option('--versions <list>', 'TLS versions enabled: 1.3,1.2 | 1.3 | 1.2')
  .option('--ticket-lifetime <seconds>', 'session ticket lifetime (0 = no tickets)', (v) => parsePositive(v, 'ticket lifetime'))
  .addOption(new Option('--session-cache <on|off>', 'TLS 1.2 session-ID cache in card RAM').choices(['on', 'off']))
  .option('--psk-modes <list>', "TLS 1.3 external-PSK modes in preference order: dhe (psk_dhe_ke), ke (psk_ke, no forward secrecy); e.g. dhe,ke")
  .action(async (o: {
    cardDir: string;
    cardKey?: string;
    suites?: string;
    groups?: string;
    unknownSni?: 'default' | 'reject';
    alpn?: string;
    keyUpdateAfter?: number;
    tls12Suites?: string;
    versions?: string;
    ticketLifetime?: number;
    sessionCache?: string;
    pskModes?: string;
  }) => {
    const paths = cardPaths(o.cardDir, { cardKey: o.cardKey });
    const opened = await openCardForAdmin({ cardDir: o.cardDir, cardKey: o.cardKey });
    const client = new CardClient(opened.transport);
    try {
      await client.select();
      const policy = {
        ...(o.suites !== undefined ? { cipherSuites: o.suites.split(',').map((n) => codeOf(TLS13_SUITES, n.trim(), 'cipher suite')) } : {}),
        ...(o.groups !== undefined ? { groups: o.groups.split(',').map((n) => codeOf(GROUPS, n.trim(), 'group')) } : {}),
        ...(o.unknownSni !== undefined ? { unknownSni: o.unknownSni } : {}),
        ...(o.alpn !== undefined ? { alpn: o.alpn === '' ? [] : o.alpn.split(',').map((a) => a.trim()) } : {}),
        ...(o.keyUpdateAfter !== undefined ? { keyUpdateAfterRecords: o.keyUpdateAfter } : {}),
        ...(o.tls12Suites !== undefined ? { cipherSuites12: parseTls12Suites(o.tls12Suites) } : {}),
        ...(o.versions !== undefined ? { versions: parseVersions(o.versions) } : {}),
        ...(o.ticketLifetime !== undefined ? { ticketLifetimeSeconds: o.ticketLifetime } : {}),
        ...(o.sessionCache !== undefined ? { sessionIdCache: parseOnOff(o.sessionCache, '--session-cache') } : {}),
        ...(o.pskModes !== undefined ? { pskModes: parsePskModes(o.pskModes) } : {}),
      };
      if (Object.keys(policy).length > 0) {
        await client.verifyPin(readOperatorPin(paths), 'operator');
        await client.putPolicy(policy);
      }
      const p = (await client.cardInfo()).policy;
      console.log(
        JSON.stringify(
          p && {
            ...p,
            cipherSuites: p.cipherSuites?.map(suiteName),
            groups: p.groups?.map(groupName),
            ...(p.cipherSuites12 ? { cipherSuites12: p.cipherSuites12.map(suiteName) } : {}),
            ...(p.versions ? { versions: p.versions.map(versionName) } : {}),
          },
          null,
          2,
        ),
      );
    } finally {
      await opened.close();
    }
  });

const KEY_NAMES: Record<KeyTypeName, string> = { p256: 'ECDSA P-256', rsa2048: 'RSA-2048' };

registerCardAdminCommands(card, DEFAULT_CARD_DIR);
registerPinCommands(card, DEFAULT_CARD_DIR);
registerFactoryCommands(program, card, DEFAULT_CARD_DIR);
registerOperatorQuickstart(registerOperatorCommands(program));
registerAuditCommands(program);
registerCampaignCommands(program);


card
  .command('serve')
  .description('run the card as its own process behind pcscd (vsmartcard vpcd protocol)')
  .option('--card-dir <dir>', 'card state folder', DEFAULT_CARD_DIR)
  .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
  .option('--vpcd-host <addr>', 'vpcd address (connect to it; with --reversed: listen on it)', '127.0.0.1')
  .option('--vpcd-port <n>', 'vpcd port of the first slot (the second is n+1)', (v) => parsePort(v), 35963)
  .option('--reversed', 'listen on both slot ports and let pcscd connect (reader.conf DEVICENAME 127.0.0.1:0x8C7B); one reader per slot')
  .option('--allow-remote-vpcd', 'accept a non-loopback --vpcd-host (vpcd has NO authentication: anyone who reaches it drives the card)')
  .option('--name <name>', 'card name in the ATR historical bytes', 'setls')
  .action(async (o: { cardDir: string; cardKey?: string; vpcdHost: string; vpcdPort: number; reversed?: boolean; allowRemoteVpcd?: boolean; name: string }) => {
    await runCardServe(o);
  });

/** The options every `serve` command shares: which card, its PIN, where to listen, the backlog, tracing. */
function cardServeOptions(cmd: Command, portHelp: string, defaultPort: number): Command {
  return cmd
    .option('--card-dir <dir>', 'card state folder', DEFAULT_CARD_DIR)
    .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
    .option('--pin-file <file>', 'user PIN file (default: <card-dir>.pin; or set SETLS_PIN)')
    .option('--port <n>', portHelp, (v) => parsePort(v), defaultPort)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--backlog <n>', 'complete ClientHellos queued for a card channel at most (they queue while the expected wait fits the handshake deadline; beyond: a TLS internal_error alert)', (v) => parsePositive(v, 'backlog'), 1024)
    .option('--trace', 'print every APDU as annotated hex on stderr')
    .option('--card-thread', 'run the emulated card in a worker thread of its own (its heap, its CPU; the host keeps only APDU bytes); not with --reader')
    .option('--channels <n>', "logical channels of the card to serve on (default: all it opens, less the admin socket's 2)", (v) => parsePositive(v, 'channels'))
    .option('--hold-ms <ms>', 'while others wait, a session holding a card channel this long is exported (policy allowing) or closed with close_notify (default 2000)', (v) => parsePositive(v, 'hold-ms'))
    .option('--handshake-timeout-ms <ms>', 'handshake deadline, also the longest wait for a channel (default 10000; 3000 once others wait)', (v) => parsePositive(v, 'handshake-timeout-ms'))
    .option('--max-pending <n>', 'connections still sending their ClientHello at most; beyond, the stalest is closed (default 4096)', (v) => parsePositive(v, 'max-pending'))
    .option('--max-per-peer <n>', 'waiting connections per source IP (default: half of --max-pending)', (v) => parsePositive(v, 'max-per-peer'))
    .option('--max-active-per-peer <n>', 'card channels one source IP holds while another waits (default: half of them)', (v) => parsePositive(v, 'max-active-per-peer'));
}

const serve = program.command('serve').description('serve clients through the card');
cardServeOptions(serve.command('https').description('HTTPS whose TLS ends inside the card (the demo connected plug)'), 'TCP port', 8443)
  .option('--reader <name>', 'use the card in this PC/SC reader (through pcscd), e.g. "Virtual PCD 00 00"; the PIN still comes from <card-dir>.pin or SETLS_PIN')
  .addOption(new Option('--pcsc-share <mode>', 'PC/SC share mode (auto = exclusive: the binding has no PC/SC transactions)').choices(['auto', 'shared', 'exclusive']))
  .addOption(new Option('--driver <kind>', "applet protocol: 'eap' (setls applet) or 'tls-se' (draft-urien-tls-se applet, AID 01 02 03 04 05 00)").choices(['eap', 'tls-se']).default('eap'))
  .addOption(
    new Option('--record-layer <where>', "TLS-Tandem: records protected in the card, or on the host after EXPORT-SESSION (the identity's policy must allow export; the card is freed for the next client; the host seals with the native sealer when built, SETLS_NATIVE=0 turns it off)")
      .choices(['card', 'host'])
      .default('card'),
  )
  .option('--cards <dirs>', 'a pool: serve through these card state folders (comma-separated), one listener')
  .option('--pool <n>', 'a pool of N cards cloned from --card-dir (state folders <card-dir>-pool1…)', (v) => parsePositive(v, 'pool'))
  .option('--admin-port <n>', 'Prometheus /metrics on 127.0.0.1:<n>', (v) => parsePort(v))
  .option('--operator <url>', 'also run the device agent: poll this operator (https://host:port) for admin scripts, run on a logical channel of their own')
  .option('--operator-ca <file>', "PEM of the CA of the operator's certificate (with --operator)")
  .option('--operator-token-file <file>', "the agent's bearer token (with --operator; read at each request)")
  .option('--host-id <id>', 'the agent\'s host id, X-Admin-From (with --operator; default: the host name)')
  .option('--card-uid <hex>', 'the card UID, for a card without a security domain to ask (with --operator)')
  .option('--est <url>', 'zero-touch enrolment first: a card without operator and without an active identity enrols over EST at this operator (https://host:port; its CA: --operator-ca)')
  .action(async (o: ServeHttpsOptions) => {
    await runServeHttps({ ...o, logFormat: globalLogFormat() });
  });

program
  .command('agent')
  .description('the device agent alone: relays the operator\'s admin scripts to the card on a logical channel of its own (`serve https --operator` runs it next to the TLS service)')
  .option('--operator <url>', 'the operator, https://host:port (required unless --est)')
  .option('--est <url>', 'zero-touch enrolment first: a card without operator and without an active identity enrols over EST at this operator (https://host:port); alone, the command ends once done')
  .option('--operator-ca <file>', "PEM of the CA of the operator's certificate")
  .option('--operator-token-file <file>', "the agent's bearer token (read at each request)")
  .option('--host-id <id>', 'the agent\'s host id, X-Admin-From (default: the host name)')
  .option('--card-uid <hex>', 'the card UID, for a card without a security domain to ask')
  .option('--card-dir <dir>', 'card state folder', DEFAULT_CARD_DIR)
  .option('--card-key <file>', 'card master key file (default: <card-dir>.key)')
  .option('--pin-file <file>', 'accepted for symmetry with serve; the security domain needs no PIN')
  .option('--reader <name>', 'use the card in this PC/SC reader (through pcscd)')
  .addOption(new Option('--pcsc-share <mode>', 'PC/SC share mode').choices(['auto', 'shared', 'exclusive']))
  .option('--trace', 'print every APDU as annotated hex on stderr (admin scripts are SCP03-protected, but this is not the agent log)')
  .action(async (o: Parameters<typeof runAgent>[0]) => {
    if (!o.operator && !o.est) throw new SetlsError('ERR_CLI_OPTION', '--operator URL or --est URL is required');
    await runAgent(o, cliLogger(logFormat(globalLogFormat())));
  });
cardServeOptions(
  serve
    .command('coap')
    .description('CoAP over TLS (coaps+tcp, RFC 8323) on TCP and over DTLS (coaps, RFC 7252) on UDP, same port, whose (D)TLS ends inside the card (the demo plug)'),
  'TCP (coaps+tcp) and UDP (coaps) port',
  5684,
)
  .option('--no-dtls', 'do not serve CoAP over DTLS on UDP')
  .action(async (o: ServeHttpsOptions & { dtls?: boolean }) => {
    await runServeCoap({ ...o, logFormat: globalLogFormat() });
  });

program
  .command('demo')
  .description('create the demo card if needed, then serve the demo plug over HTTPS and CoAP over TLS and DTLS (npm start; other ports: npm start -- --port N --coap-port M)')
  .option('--card-dir <dir>', 'card state folder', DEFAULT_CARD_DIR)
  .option('--port <n>', 'HTTPS port', (v) => parsePort(v), 8443)
  .option('--coap-port <n>', 'CoAP port: coaps+tcp on TCP and coaps on UDP', (v) => parsePort(v), 5684)
  .option('--host <addr>', 'address to listen on', '127.0.0.1')
  .option('--trace', 'print every APDU as annotated hex on stderr')
  .option('--card-thread', 'run the emulated card in a worker thread of its own')
  .action(async (o: { cardDir: string; port: number; coapPort: number; host: string; trace?: boolean; cardThread?: boolean }) => {
    if (!existsSync(cardPaths(o.cardDir).dir)) {
      const r = await initCard({ cardDir: o.cardDir });
      console.log(`created the demo card in ${r.paths.dir}; clients trust ${r.caCertPath}`);
    }
    // One card, one tandem: HTTPS and CoAP share its sessions (and the plug's state); the demo card
    // gets "coap" added to its ALPN policy so libcoap's certificate clients are accepted.
    await runServeCoap({ cardDir: o.cardDir, port: o.coapPort, httpsPort: o.port, host: o.host, backlog: 1024, trace: o.trace, ...(o.cardThread ? { cardThread: true } : {}), fixAlpn: true, demoPsk: true, logFormat: globalLogFormat() });
  });


function parsePskModes(v: string): ('dhe' | 'ke')[] {
  const modes = v.split(',').map((m) => m.trim());
  for (const m of modes) if (m !== 'dhe' && m !== 'ke') throw new Error(`--psk-modes: '${m}' is not dhe or ke`);
  return modes as ('dhe' | 'ke')[];
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`invalid port '${v}'`);
  return n;
}

function parsePositive(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`invalid ${what} '${v}'`);
  return n;
}

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = err as { code?: string; message?: string; port?: number };
  console.error(`setls: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`);
  for (const line of errorHints(e, program.args[0])) console.error(line);
  process.exit(1);
});

/** What to do about an error the user can fix (printed after it). */
function errorHints(e: { code?: string; port?: number }, command: string | undefined): string[] {
  if (e.code !== 'EADDRINUSE') return [];
  const port = e.port !== undefined ? `port ${e.port}` : 'the port';
  return [
    `  ${port} is taken: another setls (each prints its PID and how to stop it) or another server.`,
    command === 'demo'
      ? '  Stop it, or use other ports: npm start -- --port 9443 --coap-port 5685 (setls demo --port N --coap-port M)'
      : '  Stop it, or listen on another port: --port N',
  ];
}
