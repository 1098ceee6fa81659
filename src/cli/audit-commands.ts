/**
 * cli/audit-commands: `setls operator audit run | findings | finding | resolve` — HTTPS clients of a
 * running `setls operator serve` (POST /v1/audits/run, GET /v1/findings, POST
 * /v1/findings/{id}/resolve), human tables by default, `--json` for machines. imports
 * cli/operator-commands, cli/operator-format.
 */
import { Command, Option } from 'commander';
import { client, clientOptions, print, uidArg, type ClientFlags } from './operator-commands.js';
import { short, table } from './operator-format.js';

type J = Record<string, unknown>;

const CHECKS = ['cert-expiring', 'revoked-cert-served', 'shared-key', 'factory-keys-unrotated', 'audit-log-gap', 'audit-log-bad-signature', 'lock-not-delivered', 'card-not-seen', 'ca-expiring'];

function findingLine(f: J): string {
  return `finding ${String(f['id'])} ${String(f['check'])} ${String(f['severity'])} ${String(f['status'])}${f['resolution'] ? ` (${String(f['resolution'])} by ${String(f['resolvedBy'])})` : ''}: ${String(f['subject'])}${f['card'] ? ` on card ${String(f['card'])}` : ''}`;
}

/** Adds `audit` to the `operator` command of `program`. */
export function registerAuditCommands(program: Command): void {
  const op = program.commands.find((c) => c.name() === 'operator');
  if (!op) throw new Error('the operator command is registered first');
  const audit = op.command('audit').description('fleet audits: run the checks, list and resolve findings');

  clientOptions(audit.command('run').description('run the audit checks now (one run at a time across operator nodes)'))
    .addOption(new Option('--check <name...>', 'only these checks').choices(CHECKS))
    .action(async (o: ClientFlags & { check?: string[] }) => {
      const r = await client(o).ok<{ checks: Record<string, J> }>('POST', '/v1/audits/run', o.check ? { checks: o.check } : {});
      print(o, r, () =>
        table(
          ['CHECK', 'OPEN', 'NEW', 'RESOLVED', 'NOTE'],
          Object.entries(r.checks).map(([name, c]) => [name, String(c['open']), String(c['new']), String(c['resolved']), c['error'] ? `error: ${String(c['error'])}` : c['truncated'] ? 'truncated' : '']),
        ),
      );
    });

  clientOptions(audit.command('findings').description('list findings (newest first)'))
    .addOption(new Option('--check <name>', 'of this check').choices(CHECKS))
    .addOption(new Option('--status <status>', 'open or resolved').choices(['open', 'resolved']))
    .option('--card <uid>', 'of this card')
    .option('--limit <n>', 'page size (≤ 1000)', '100')
    .option('--all', 'follow every page')
    .action(async (o: ClientFlags & { check?: string; status?: string; card?: string; limit: string; all?: boolean }) => {
      const c = client(o);
      const q = new URLSearchParams();
      if (o.check) q.set('check', o.check);
      if (o.status) q.set('status', o.status);
      if (o.card) q.set('card', uidArg(o.card));
      q.set('limit', o.limit);
      const items: J[] = [];
      let cursor: string | null = null;
      do {
        if (cursor) q.set('cursor', cursor);
        const page: { items: J[]; next: string | null } = await c.ok('GET', `/v1/findings?${q}`);
        items.push(...page.items);
        cursor = page.next;
      } while (o.all && cursor);
      print(o, { items, next: cursor }, () =>
        table(
          ['FINDING', 'CHECK', 'SEVERITY', 'STATUS', 'CARD', 'SUBJECT', 'FIRST SEEN', 'LAST SEEN'],
          items.map((f) => [String(f['id']), String(f['check']), String(f['severity']), `${String(f['status'])}${f['resolution'] ? ` (${String(f['resolution'])})` : ''}`, f['card'] ? String(f['card']) : '', String(f['subject']), short(f['firstSeenAt']), short(f['lastSeenAt'])]),
        ) + (cursor ? `\n(more: --all, or cursor ${cursor})` : ''),
      );
    });

  clientOptions(audit.command('finding').description('show one finding with its detail').argument('<id>')).action(async (id: string, o: ClientFlags) => {
    const f = await client(o).ok<J>('GET', `/v1/findings/${encodeURIComponent(id)}`);
    print(o, f, () => `${findingLine(f)}\n  first seen ${short(f['firstSeenAt'])}, last seen ${short(f['lastSeenAt'])}\n  ${JSON.stringify(f['detail'])}`);
  });

  clientOptions(audit.command('resolve').description('resolve a finding by hand (accepted / false-positive: not reported again while the condition lasts)').argument('<id>'))
    .addOption(new Option('--resolution <r>', 'why').choices(['fixed', 'accepted', 'false-positive']).default('fixed'))
    .action(async (id: string, o: ClientFlags & { resolution: string }) => {
      const f = await client(o).ok<J>('POST', `/v1/findings/${encodeURIComponent(id)}/resolve`, { resolution: o.resolution });
      print(o, f, () => findingLine(f));
    });
}
