/**
 * cli/est-commands: `setls operator est-credential create|list|revoke` (enrolment credentials for EST
 * clients that are not cards: the password is printed once) and `setls operator est-certificate
 * list|show|revoke` (the certificates they hold). HTTPS clients of a running `setls operator serve`
 * (cli/operator-client.ts). imports commander, cli/operator-client, cli/operator-format, bytes/.
 */
import type { Command } from 'commander';
import { SetlsError } from '../bytes/index.js';
import { DEFAULT_OPERATOR_DIR } from '../operator/paths.js';
import { OperatorClient } from './operator-client.js';
import { sanText, short, table } from './operator-format.js';

type J = Record<string, unknown>;
interface Flags {
  dir: string;
  url?: string;
  ca?: string;
  tokenFile?: string;
  json?: boolean;
}

function withClient(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'operator state folder (token, CA file, URL of the running serve)', DEFAULT_OPERATOR_DIR)
    .option('--url <url>', 'operator URL (default: from <dir>/serve.json)')
    .option('--ca <file>', 'CA file to trust the operator with (default <dir>/tls-ca.crt)')
    .option('--token-file <file>', 'API token file (default: SETLS_OPERATOR_TOKEN, else <dir>/admin.token)')
    .option('--json', 'machine-readable output');
}

const client = (o: Flags): OperatorClient => new OperatorClient({ dir: o.dir, url: o.url, ca: o.ca, tokenFile: o.tokenFile });
const out = (o: Flags, value: unknown, human: () => string): void => console.log(o.json ? JSON.stringify(value, null, 2) : human());
const serialArg = (s: string): string => s.replace(/:/g, '').toLowerCase();

/** `30d`, `12h`, `45m` from now, or an ISO time → ISO time. */
export function expiryArg(v: string, now = Date.now()): string {
  const m = /^(\d{1,6})([dhm])$/.exec(v.trim());
  const t = m ? now + Number(m[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as 'd' | 'h' | 'm'] : Date.parse(v);
  if (!Number.isFinite(t)) throw new SetlsError('ERR_OP_BAD_REQUEST', `'${v}' is not a duration (30d, 12h, 45m) or an ISO time`);
  return new Date(t).toISOString();
}

function intArg(v: string): number {
  if (!/^\d{1,7}$/.test(v)) throw new SetlsError('ERR_OP_BAD_REQUEST', `'${v}' is not a positive integer`);
  return Number(v);
}

export function registerEstCommands(op: Command): void {
  const cred = op.command('est-credential').description('enrolment credentials for EST clients without a card (HTTP Basic on /simpleenroll)');
  withClient(cred.command('create').description('create a credential; its password is printed once'))
    .requiredOption('--name <name>', 'what it is for')
    .option('--uses <n>', 'enrolments it allows', intArg, 1)
    .option('--expires <when>', 'expiry: 30d, 12h, 45m from now, or an ISO time', '7d')
    .option('--cn <pattern...>', 'profile: subject CNs allowed (a name or *.suffix)')
    .option('--dns <pattern...>', 'profile: DNS names allowed in the SAN (and as CN)')
    .option('--ip <addr...>', 'profile: IP addresses allowed in the SAN')
    .option('--days <n>', 'profile: certificate validity in days (at most the operator default)', intArg)
    .action(async (o: Flags & { name: string; uses: number; expires: string; cn?: string[]; dns?: string[]; ip?: string[]; days?: number }) => {
      const body = {
        name: o.name,
        uses: o.uses,
        expiresAt: expiryArg(o.expires),
        ...(o.cn ? { cn: o.cn } : {}),
        ...(o.dns ? { dns: o.dns } : {}),
        ...(o.ip ? { ip: o.ip } : {}),
        ...(o.days !== undefined ? { days: o.days } : {}),
      };
      const r = await client(o).ok<{ credential: J; username: string; password: string }>('POST', '/v1/est/credentials', body);
      out(o, r, () => `username: ${r.username}\npassword: ${r.password}\n(${r.credential['usesLeft'] as number} use(s) until ${short(r.credential['expiresAt'])}; the password is not shown again)`);
    });
  withClient(cred.command('list').description('list credentials (never their passwords)')).action(async (o: Flags) => {
    const r = await client(o).ok<{ items: J[] }>('GET', '/v1/est/credentials');
    out(o, r, () =>
      table(
        ['USERNAME', 'NAME', 'USES LEFT', 'EXPIRES', 'REVOKED', 'PROFILE'],
        r.items.map((c) => [c['id'] as string, c['name'] as string, c['usesLeft'] as number, short(c['expiresAt']), c['revokedAt'] ? short(c['revokedAt']) : '-', JSON.stringify(c['profile'])]),
      ),
    );
  });
  withClient(cred.command('revoke').description('revoke a credential (certificates already issued stay valid)').argument('<username>')).action(async (id: string, o: Flags) => {
    const r = await client(o).ok<{ credential: J }>('POST', `/v1/est/credentials/${encodeURIComponent(id)}/revoke`, {});
    out(o, r, () => `credential ${id} revoked at ${short(r.credential['revokedAt'])}`);
  });

  const cert = op.command('est-certificate').description('certificates issued over EST to clients without a card');
  withClient(cert.command('list').description('list them, newest first'))
    .option('--limit <n>', 'at most this many', intArg, 100)
    .action(async (o: Flags & { limit: number }) => {
      const r = await client(o).ok<{ items: J[] }>('GET', `/v1/est/certificates?limit=${o.limit}`);
      out(o, r, () =>
        table(
          ['SERIAL', 'SUBJECT', 'SAN', 'STATUS', 'NOT AFTER', 'CREDENTIAL', 'REPLACES'],
          r.items.map((c) => [c['serial'] as string, c['subject'] as string, sanText(c['san']), c['status'] as string, short(c['notAfter']), (c['credential'] as string) ?? '-', (c['replaces'] as string) ?? '-']),
        ),
      );
    });
  withClient(cert.command('show').description('show one (with its PEM)').argument('<serial>')).action(async (serial: string, o: Flags) => {
    const r = await client(o).ok<{ certificate: J }>('GET', `/v1/est/certificates/${serialArg(serial)}`);
    const x = r.certificate;
    out(o, r, () => `certificate ${String(x['serial'])} ${String(x['subject'])}: ${String(x['status'])}, ${short(x['notBefore'])} – ${short(x['notAfter'])}, ${sanText(x['san'])}\n${String(x['pem'])}`);
  });
  withClient(cert.command('revoke').description('revoke one; the CRL is regenerated at once').argument('<serial>'))
    .option('--reason <reason>', 'unspecified | keyCompromise | affiliationChanged | superseded | cessationOfOperation | privilegeWithdrawn …', 'unspecified')
    .action(async (serial: string, o: Flags & { reason: string }) => {
      const r = await client(o).ok<{ certificate: J; crl: J }>('POST', `/v1/est/certificates/${serialArg(serial)}/revoke`, { reason: o.reason });
      out(o, r, () => `certificate ${String(r.certificate['serial'])} revoked (${o.reason}); CRL number ${String(r.crl['number'])} published`);
    });
}
