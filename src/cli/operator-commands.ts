/**
 * cli/operator-commands: the `setls operator …` commands. Local ones open the state folder
 * directly (init, serve, token, trust-manufacturer); the others are HTTPS clients of a running
 * `setls operator serve` with the token in D/admin.token (cli/operator-client.ts). Human tables by
 * default, `--json` for machines; every refusal exits 1 with its ERR_OP_ code.
 * imports operator/ and cli/operator-*.
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { SetlsError } from '../bytes/index.js';
import { createApiToken, isRole } from '../operator/auth/tokens.js';
import { createAgentToken } from '../operator/auth/agent-tokens.js';
import { DEFAULT_OPERATOR_DIR, DEFAULT_OPERATOR_PORT, operatorPaths } from '../operator/paths.js';
import { readMasterKeyFile, transportMasterPath } from '../operator/keys/master-keys.js';
import { writeSecretFile } from '../operator/keys/secret-files.js';
import { aesKcv } from '../gp/keys.js';
import { toHex } from '../bytes/index.js';
import { initOperator } from '../operator/init.js';
import { Operator } from '../operator/operator.js';
import { startOperator } from '../operator/service.js';
import type { Role } from '../operator/store/types.js';
import { isPgUrl } from '../operator/store/index.js';
import { OperatorClient, type ClientOptions } from './operator-client.js';
import { cardDetails, jobLine, sanText, short, table } from './operator-format.js';
import { registerEstCommands } from './est-commands.js';

type J = Record<string, unknown>;
export interface ClientFlags {
  dir: string;
  url?: string;
  ca?: string;
  tokenFile?: string;
  json?: boolean;
}

const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'canceled']);

export function clientOptions(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'operator state folder (token, CA file, URL of the running serve)', DEFAULT_OPERATOR_DIR)
    .option('--url <url>', 'operator URL (default: from <dir>/serve.json, else https://localhost:9443)')
    .option('--ca <file>', 'CA file to trust the operator with (default <dir>/tls-ca.crt)')
    .option('--token-file <file>', 'API token file (default: SETLS_OPERATOR_TOKEN, else <dir>/admin.token)')
    .option('--json', 'machine-readable output');
}

export function client(o: ClientFlags): OperatorClient {
  const opts: ClientOptions = { dir: o.dir, url: o.url, ca: o.ca, tokenFile: o.tokenFile };
  return new OperatorClient(opts);
}

export function print(o: { json?: boolean }, value: unknown, human: () => string): void {
  console.log(o.json ? JSON.stringify(value, null, 2) : human());
}

export function uidArg(v: string): string {
  const u = v.replace(/[\s:]/g, '').toLowerCase();
  if (!/^([0-9a-f]{2}){1,32}$/.test(u)) throw new SetlsError('ERR_OP_BAD_REQUEST', `'${v}' is not a card UID (hex)`);
  return u;
}

function auditIntervalArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 7 * 86_400) throw new Error(`invalid audit interval '${v}' (seconds, 0..604800)`);
  return n;
}

export function parsePortArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`invalid port '${v}'`);
  return n;
}

/** Polls a job until it ends; prints a line on every change; exit code 0 only on success. */
export async function waitJob(c: OperatorClient, job: J, o: { json?: boolean; timeout?: number }): Promise<void> {
  const deadline = o.timeout ? Date.now() + o.timeout * 1000 : Infinity;
  let last = '';
  let current = job;
  for (;;) {
    const line = jobLine(current);
    if (line !== last && !o.json) console.error(line);
    last = line;
    if (FINAL.has(String(current['status']))) break;
    if (Date.now() > deadline) throw new SetlsError('ERR_OP_WAIT_TIMEOUT', `job ${String(current['id'])} still ${String(current['status'])} after ${o.timeout} s (it goes on; setls operator job ${String(current['id'])})`);
    await new Promise((r) => setTimeout(r, 500));
    current = (await c.ok<{ job: J }>('GET', `/v1/jobs/${String(current['id'])}`)).job;
  }
  if (o.json) console.log(JSON.stringify({ job: current }, null, 2));
  if (current['status'] !== 'succeeded') {
    throw new SetlsError(String(current['errorCode'] ?? 'ERR_OP_JOB_FAILED'), `job ${String(current['id'])} ${String(current['status'])}${current['reason'] ? ` (${String(current['reason'])})` : ''}: ${String(current['errorMessage'] ?? '')}`);
  }
}

export interface ServeFlags {
  dir: string;
  port: number;
  host: string;
  publicUrl?: string;
  jobs: boolean;
  jobLease?: number;
  scriptTimeout?: number;
  store?: string;
  auditInterval: number;
}

/** The options of `operator serve` (and `operator up`). */
export function serveOptions(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'operator state folder', DEFAULT_OPERATOR_DIR)
    .option('--port <n>', 'TCP port', parsePortArg, DEFAULT_OPERATOR_PORT)
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .option('--public-url <url>', 'URL relying parties and agents use (overrides operator.json)')
    .option('--no-jobs', 'do not run jobs in this process')
    .option('--job-lease <ms>', 'job lease: how long a job held by a runner that died waits before another takes it over', (v) => Number(v))
    .option('--script-timeout <ms>', 'deadline of one admin script through the device agent', (v) => Number(v))
    .option('--audit-interval <seconds>', 'run the fleet audits this often (0: never; several serve nodes share the runs)', auditIntervalArg, 900)
    .option('--store <url|file>', 'the store: postgres://… (several serve processes may share it) or a SQLite file; default: SETLS_OPERATOR_STORE, operator.json, DIR/operator.db');
}

/** `operator serve`: the API, relay and job runner until SIGINT/SIGTERM. */
export async function serveOperator(o: ServeFlags): Promise<void> {
  const running = await startOperator({
    dir: o.dir,
    store: o.store,
    port: o.port,
    host: o.host,
    publicUrl: o.publicUrl,
    runJobs: o.jobs,
    defaultMetrics: true,
    ...(o.jobLease ? { runner: { leaseMs: o.jobLease } } : {}),
    ...(o.scriptTimeout ? { scriptTimeoutMs: o.scriptTimeout } : {}),
    ...(o.auditInterval > 0 ? { auditIntervalMs: o.auditInterval * 1000 } : {}),
  });
  console.log(`operator serving at ${running.url}/ (API /v1, CA ${running.operator.paths.caCert}, clients trust ${running.operator.paths.tlsCaCert})`);
  const stop = (): void => {
    void running.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** Registers `setls operator …`; returns the `operator` command (cli/operator-quickstart adds to it). */
export function registerOperatorCommands(program: Command): Command {
  const op = program.command('operator').description('the operator service: enrol, lock, re-key and revoke cards through untrusted device agents');

  op.command('init')
    .description('create an operator: store, issuing CA, TLS certificate, admin master key, admin token')
    .option('--dir <dir>', 'operator state folder', DEFAULT_OPERATOR_DIR)
    .option('--public-url <url>', 'URL relying parties and agents use (CRL URLs in certificates); default: the URL serve listens on')
    .option('--hostname <name...>', "extra DNS names / IPs for the operator's HTTPS certificate", [])
    .option('--manufacturer-ca <file...>', 'trust these manufacturer CA certificates (PEM) for attestation', [])
    .option('--manufacturer-keys <file...>', "manufacturer master key files (e.g. .setls/manufacturer/master.key): the cards' factory SCP03 keys (KVN 30) derive from them", [])
    .option('--store <url>', 'postgres://user@host:port/db to keep the store in PostgreSQL (password: PGPASSWORD or ~/.pgpass; kept in operator.json without it); default: DIR/operator.db (SQLite)')
    .action(async (o: { dir: string; publicUrl?: string; hostname: string[]; manufacturerCa: string[]; manufacturerKeys: string[]; store?: string }) => {
      if (o.store !== undefined && !isPgUrl(o.store)) throw new SetlsError('ERR_OP_BAD_REQUEST', '--store takes a postgres:// URL (the SQLite store is always DIR/operator.db)');
      const r = await initOperator({
        dir: o.dir,
        store: o.store,
        publicUrl: o.publicUrl,
        hostnames: o.hostname,
        manufacturerCaPems: o.manufacturerCa.map((f) => readFileSync(f, 'utf8')),
        manufacturerKeyFiles: o.manufacturerKeys,
      });
      console.log(`operator created in ${r.paths.dir}`);
      console.log(`  store:            ${r.store}`);
      console.log(`  issuing CA:       ${r.paths.caCert} (relying parties trust it; key ${r.paths.caKey}, 0600)`);
      console.log(`  CA SHA-256:       ${r.caFingerprint}`);
      console.log(`  HTTPS:            ${r.paths.tlsCert}, issued by ${r.paths.tlsCaCert} (API clients trust that one)`);
      console.log(`  admin master key: ${r.paths.keysDir}/admin-master-v1.key (0600, KCV ${r.masterKcv})`);
      console.log(`  admin token:      ${r.paths.adminToken} (0600)`);
      console.log(`  manufacturer CAs: ${r.trustedManufacturers} trusted${r.trustedManufacturers === 0 ? ' (setls operator trust-manufacturer FILE)' : ''}`);
      if (r.transportKeyIds.length) console.log(`  transport keys:   ${r.transportKeyIds.map((id) => `${r.paths.keysDir}/transport-${id}.key`).join(', ')} (0600)`);
    });

  serveOptions(op.command('serve').description('serve the operator API over HTTPS (and run its jobs)'))
    .action(async (o: ServeFlags) => {
      await serveOperator(o);
    });

  op.command('token')
    .description('create an API token and print it (only its hash is stored)')
    .addOption(new Option('--role <role>', 'role').choices(['viewer', 'operator', 'admin']).makeOptionMandatory())
    .option('--name <name>', 'who or what holds it', '')
    .option('--dir <dir>', 'operator state folder', DEFAULT_OPERATOR_DIR)
    .action(async (o: { role: string; name: string; dir: string }) => {
      if (!isRole(o.role)) throw new SetlsError('ERR_OP_BAD_REQUEST', 'role must be viewer, operator or admin');
      const operator = await Operator.open({ dir: o.dir });
      try {
        const { token } = await createApiToken(operator.store, o.role as Role, o.name || `${o.role} token`);
        console.log(token);
      } finally {
        await operator.close();
      }
    });

  op.command('agent-token')
    .description("create the bearer token of a device host's agent and print it (only its hash is stored; a new one replaces the old)")
    .requiredOption('--host <id>', "the agent's host id (its --host-id, X-Admin-From)")
    .option('--dir <dir>', 'operator state folder', DEFAULT_OPERATOR_DIR)
    .action(async (o: { host: string; dir: string }) => {
      const operator = await Operator.open({ dir: o.dir });
      try {
        console.log(await createAgentToken(operator.store, o.host, operator.now()));
      } finally {
        await operator.close();
      }
    });

  op.command('transport-key')
    .description("keep a manufacturer's transport master (hex AES key; the factory key sets of its cards derive from it) as keys/transport-<id>.key, mode 0600")
    .requiredOption('--id <id>', 'the transportKeyId its manifests name')
    .argument('<file>', 'file holding the master key in hex')
    .option('--dir <dir>', 'operator state folder', DEFAULT_OPERATOR_DIR)
    .action((file: string, o: { id: string; dir: string }) => {
      const key = readMasterKeyFile(file);
      try {
        const path = transportMasterPath(operatorPaths(o.dir).keysDir, o.id);
        writeSecretFile(path, toHex(key) + '\n');
        console.log(`transport master '${o.id}' kept in ${path} (KCV ${toHex(aesKcv(key))})`);
      } finally {
        key.fill(0);
      }
    });

  op.command('trust-manufacturer')
    .description('trust a manufacturer CA certificate (PEM) for attestation')
    .argument('<file>', 'PEM file')
    .option('--name <name>', 'manufacturer name')
    .option('--dir <dir>', 'operator state folder', DEFAULT_OPERATOR_DIR)
    .action(async (file: string, o: { name?: string; dir: string }) => {
      const operator = await Operator.open({ dir: o.dir });
      try {
        for (const { row, added } of await operator.trustManufacturer(readFileSync(file, 'utf8'), o.name)) {
          console.log(`${added ? 'trusted' : 'already trusted'}: ${row.name} (SHA-256 ${row.fingerprint})`);
        }
      } finally {
        await operator.close();
      }
    });

  clientOptions(op.command('import-manifest').description('import manufacturer manifests (JSON) into the registry').argument('<files...>')).action(
    async (files: string[], o: ClientFlags) => {
      const c = client(o);
      const results = [];
      for (const f of files) {
        let doc: unknown;
        try {
          doc = JSON.parse(readFileSync(f, 'utf8'));
        } catch (e) {
          throw new SetlsError('ERR_OP_BAD_JSON', `${f}: ${(e as Error).message}`);
        }
        const r = await c.ok<{ imported: string[]; alreadyPresent: string[]; factsAdded?: string[]; batchId: string | null }>('POST', '/v1/manifests', doc);
        results.push({ file: f, ...r });
        if (!o.json) console.log(`${f}: ${r.imported.length} card(s) imported${r.alreadyPresent.length ? `, ${r.alreadyPresent.length} already present` : ''}${r.factsAdded?.length ? ` (${r.factsAdded.length} of them given their verified attestation facts)` : ''}${r.batchId ? ` (batch ${r.batchId})` : ''}`);
      }
      if (o.json) console.log(JSON.stringify(results, null, 2));
    },
  );

  clientOptions(op.command('cards').description('list cards'))
    .option('--state <state>', 'manifest | enrolled | active | locked | terminated')
    .option('--label <label>', 'key or key=value')
    .option('--expiring-before <time>', 'holding a good certificate expiring before (ISO time)')
    .option('--limit <n>', 'page size (≤ 1000)', '100')
    .option('--all', 'follow every page')
    .action(async (o: ClientFlags & { state?: string; label?: string; expiringBefore?: string; limit: string; all?: boolean }) => {
      const c = client(o);
      const q = new URLSearchParams();
      if (o.state) q.set('state', o.state);
      if (o.label) q.set('label', o.label);
      if (o.expiringBefore) q.set('expiring_before', o.expiringBefore);
      q.set('limit', o.limit);
      const items: J[] = [];
      let cursor: string | null = null;
      do {
        if (cursor) q.set('cursor', cursor);
        const page: { items: J[]; nextCursor: string | null } = await c.ok('GET', `/v1/cards?${q}`);
        items.push(...page.items);
        cursor = page.nextCursor;
      } while (o.all && cursor);
      print(o, { items, nextCursor: cursor }, () =>
        table(
          ['UID', 'STATE', 'KVN', 'LABELS', 'UPDATED'],
          items.map((x) => [String(x['uid']), String(x['state']), String(x['kvn']), Object.entries((x['labels'] as J) ?? {}).map(([k, v]) => `${k}=${String(v)}`).join(','), short(x['updatedAt'])]),
        ) + (cursor ? `\n(more: --all, or cursor ${cursor})` : ''),
      );
    });

  clientOptions(op.command('card').description('show one card: identities, certificates, jobs').argument('<uid>')).action(async (uid: string, o: ClientFlags) => {
    const card = await client(o).ok<J>('GET', `/v1/cards/${uidArg(uid)}`);
    print(o, card, () => cardDetails(card));
  });

  const jobCommand = (kind: string, description: string, extra?: (cmd: Command) => Command, body?: (o: J) => J): void => {
    let cmd = clientOptions(op.command(kind).description(description).argument('<uid>'))
      .option('--wait', 'wait until the job ends (progress on stderr); exit 0 only on success')
      .option('--timeout <seconds>', 'with --wait: give up waiting after this long', (v) => Number(v))
      .option('--idempotency-key <key>', 'retry-safe request key (default: a fresh one)');
    if (extra) cmd = extra(cmd);
    cmd.action(async (uid: string, o: ClientFlags & J & { wait?: boolean; timeout?: number; idempotencyKey?: string }) => {
      const c = client(o);
      const r = await c.ok<{ job: J }>('POST', `/v1/cards/${uidArg(uid)}/${kind}`, body ? body(o) : {}, { idempotencyKey: o.idempotencyKey ?? randomUUID() });
      if (!o.wait) {
        print(o, r, () => jobLine(r.job));
        return;
      }
      await waitJob(c, r.job, o);
      if (kind === 'unblock-pin' && o['newPin']) {
        // The new PIN, for this token only: printed once on stdout.
        const s = await c.ok<{ pin: string }>('GET', `/v1/jobs/${String(r.job['id'])}/secret`);
        console.log(o.json ? JSON.stringify({ pin: s.pin }) : `new ${String(o['pin'])} PIN: ${s.pin}`);
      }
    });
  };
  const enrolBody = (o: J): J => ({
    ...(Array.isArray(o['dns']) && (o['dns'] as string[]).length ? { dnsNames: o['dns'] } : {}),
    ...(Array.isArray(o['ip']) && (o['ip'] as string[]).length ? { ipAddresses: o['ip'] } : {}),
    ...(o['days'] !== undefined ? { days: Number(o['days']) } : {}),
  });
  jobCommand('enrol', "enrol a card: key generated and attested in the card, certificate from the operator's CA", (c) =>
    c
      .option('--dns <name...>', 'DNS names for the certificate')
      .option('--ip <addr...>', 'IP addresses for the certificate')
      .option('--days <n>', 'validity in days (default 30)')
      .addOption(new Option('--client-auth <mode>', 'client certificates the identity asks for (mutual TLS)').choices(['none', 'optional', 'required']))
      .option('--export', 'allow the identity to export session keys (TLS-Tandem, serve --record-layer host)'),
  (o) => ({ ...enrolBody(o), ...(o['clientAuth'] ? { clientAuth: o['clientAuth'] } : {}), ...(o['export'] ? { exportAllowed: true } : {}) }));
  jobCommand('lock', "lock the card's TLS service", (c) => c.addOption(new Option('--scope <scope>', 'what is locked: the TLS applet, the whole card, or each identity').choices(['applet', 'card', 'identities'])), (o) =>
    o['scope'] ? { scope: o['scope'] } : {},
  );
  jobCommand('unlock', "unlock the card's TLS service");
  jobCommand('rekey', 'new key in a second slot, activate it, retire the old one after a grace period', (c) => c.option('--grace <seconds>', 'grace period of the old key'), (o) =>
    o['grace'] !== undefined ? { graceSeconds: Number(o['grace']) } : {},
  );
  jobCommand(
    'unblock-pin',
    "reset the card's PIN retry counter (with --new-pin: set a new random PIN, printed once with --wait)",
    (c) => c.addOption(new Option('--pin <which>', 'which PIN').choices(['user', 'operator']).default('user')).option('--new-pin', 'also set a new PIN (generated by the operator, sent encrypted)'),
    (o) => ({ pin: o['pin'], ...(o['newPin'] ? { newPin: true } : {}) }),
  );
  jobCommand('terminate', 'terminate the card (irreversible; admin role)');
  jobCommand('read-audit', "read and verify the card's audit log");
  jobCommand('rotate-admin-keys', "rotate the card's SCP03 admin keys (admin role)");
  jobCommand(
    'push-client-cas',
    'install client-certificate CAs (mutual TLS) into the card',
    (c) => c.requiredOption('--cert <file...>', 'PEM CA certificates').addOption(new Option('--client-auth <mode>', "also set the active identities' client authentication").choices(['none', 'optional', 'required'])),
    (o) => ({ certificates: (o['cert'] as string[]).map((f) => readFileSync(f, 'utf8')), ...(o['clientAuth'] ? { clientAuth: o['clientAuth'] } : {}) }),
  );
  jobCommand('push-deny-list', 'install a client-certificate serial deny-list into the card', (c) => c.requiredOption('--serial <hex...>', 'certificate serials'), (o) => ({ serials: o['serial'] }));

  clientOptions(op.command('revoke').description('revoke a card certificate; the CRL is regenerated at once').argument('<serial>'))
    .option('--reason <reason>', 'unspecified | keyCompromise | cACompromise | affiliationChanged | superseded | cessationOfOperation | certificateHold | privilegeWithdrawn', 'unspecified')
    .addOption(new Option('--card-action <action>', 'what the card serving it does (default: rekey when the card serves it, else none)').choices(['none', 'lock', 'rekey']))
    .action(async (serial: string, o: ClientFlags & { reason: string; cardAction?: string }) => {
      const r = await client(o).ok<{ certificate: J; crl: J; cardAction: string; job: J | null }>('POST', `/v1/certificates/${serial.replace(/:/g, '').toLowerCase()}/revoke`, {
        reason: o.reason,
        ...(o.cardAction ? { cardAction: o.cardAction } : {}),
      });
      print(o, r, () => `certificate ${String(r.certificate['serial'])} revoked (${o.reason}); CRL number ${String(r.crl['number'])} published${r.job ? `; ${jobLine(r.job)}` : ''}`);
    });

  clientOptions(op.command('certificate').description('show a certificate (with its PEM)').argument('<serial>')).action(async (serial: string, o: ClientFlags) => {
    const r = await client(o).ok<{ certificate: J }>('GET', `/v1/certificates/${serial.replace(/:/g, '').toLowerCase()}`);
    const x = r.certificate;
    print(o, r, () => `certificate ${String(x['serial'])} of card ${String(x['card'])}: ${String(x['status'])}, ${short(x['notBefore'])} – ${short(x['notAfter'])}, ${sanText(x['san'])}\n${String(x['pem'])}`);
  });

  clientOptions(op.command('jobs').description('list jobs (newest first)'))
    .option('--card <uid>', 'of this card')
    .option('--status <status>', 'queued | in_progress | succeeded | failed | timed_out | canceled')
    .option('--kind <kind>', 'job kind')
    .option('--limit <n>', 'page size (≤ 1000)', '100')
    .action(async (o: ClientFlags & { card?: string; status?: string; kind?: string; limit: string }) => {
      const q = new URLSearchParams();
      if (o.card) q.set('card', uidArg(o.card));
      if (o.status) q.set('status', o.status);
      if (o.kind) q.set('kind', o.kind);
      q.set('limit', o.limit);
      const page = await client(o).ok<{ items: J[]; nextCursor: string | null }>('GET', `/v1/jobs?${q}`);
      print(o, page, () =>
        table(
          ['JOB', 'CARD', 'KIND', 'STATUS', 'ATTEMPT', 'CREATED', 'ERROR'],
          page.items.map((j) => [
            String(j['id']),
            String(j['card']),
            String(j['kind']),
            `${String(j['status'])}${j['reason'] ? ` (${String(j['reason'])})` : ''}`,
            `${String(j['attempt'])}/${String(j['maxAttempts'])}`,
            short(j['createdAt']),
            j['errorCode'] ? String(j['errorCode']) : '',
          ]),
        ),
      );
    });

  clientOptions(op.command('job').description('show one job').argument('<id>'))
    .option('--wait', 'wait until it ends; exit 0 only on success')
    .option('--timeout <seconds>', 'with --wait: give up waiting after this long', (v) => Number(v))
    .action(async (id: string, o: ClientFlags & { wait?: boolean; timeout?: number }) => {
      const c = client(o);
      const r = await c.ok<{ job: J }>('GET', `/v1/jobs/${encodeURIComponent(id)}`);
      if (o.wait) return waitJob(c, r.job, o);
      print(o, r, () => jobLine(r.job));
    });
  registerEstCommands(op);
  return op;
}
