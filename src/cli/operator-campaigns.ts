/**
 * cli/operator-campaigns: `setls operator campaign create|list|show|pause|resume|cancel` — HTTPS
 * clients of a running `setls operator serve` (POST/GET /v1/campaigns…, CONTRACT-16). `create`
 * takes the selector as flags (--state, --label k=v repeated, --expiring-before), the job params as
 * JSON, the rate and the abort criteria; `show --wait` follows the campaign until a final state
 * (exit 0 only when completed). Human output by default, `--json` for machines.
 * imports cli/operator-commands, cli/operator-format, bytes/.
 */
import type { Command } from 'commander';
import { randomUUID } from 'node:crypto';
import { SetlsError } from '../bytes/index.js';
import { client, clientOptions, print, type ClientFlags } from './operator-commands.js';
import { short, table } from './operator-format.js';

type J = Record<string, unknown>;
const FINAL = new Set(['completed', 'canceled', 'aborted']);

function countersText(c: J): string {
  const k = (c['counters'] as J) ?? {};
  return ['targeted', 'pending', 'queued', 'running', 'succeeded', 'failed', 'canceled'].map((n) => `${n} ${String(k[n] ?? 0)}`).join(', ');
}

export function campaignLine(c: J): string {
  const reason = c['abortReason'] ? ` — ${String(c['abortReason'])}` : '';
  return `campaign ${String(c['id'])} '${String(c['name'])}' ${String(c['kind'])}: ${String(c['state'])} (${countersText(c)})${reason}`;
}

function intArg(name: string, min: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new SetlsError('ERR_OP_BAD_REQUEST', `${name} must be an integer >= ${min}`);
    return n;
  };
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

function idArg(v: string): string {
  if (!/^[0-9a-fA-F-]{36}$/.test(v)) throw new SetlsError('ERR_OP_BAD_REQUEST', `'${v}' is not a campaign id`);
  return v.toLowerCase();
}

/** Adds `campaign …` under `setls operator` (the command registered by operator-commands). */
export function registerCampaignCommands(program: Command): void {
  const op = program.commands.find((c) => c.name() === 'operator');
  if (!op) throw new Error('the operator command must be registered first');
  const camp = op.command('campaign').description('fleet campaigns: a job kind over the cards a selector picks, at a rate, with abort criteria');

  clientOptions(camp.command('create').description('create a campaign (it starts at once)'))
    .requiredOption('--name <name>', 'what it is for')
    .requiredOption('--kind <kind>', 'rekey | lock | push-anchors | push-deny-list | pin-reset')
    .requiredOption('--rate <n>', 'jobs released per minute at most', intArg('--rate', 1))
    .requiredOption('--abort-min <n>', 'abort criteria: executed jobs before the failure percentage counts', intArg('--abort-min', 1))
    .requiredOption('--abort-percent <p>', 'abort criteria: failure percentage (0–100)', (v) => Number(v))
    .option('--state <state>', 'selector: cards in this lifecycle state')
    .option('--label <k=v>', 'selector: cards with this label (repeat for several)', collect)
    .option('--expiring-before <time>', "selector: cards whose good certificate expires before (ISO time)")
    .option('--params <json>', "the job kind's parameters (JSON object)")
    .option('--idempotency-key <key>', 'retry-safe request key (default: a fresh one)')
    .action(async (o: ClientFlags & { name: string; kind: string; rate: number; abortMin: number; abortPercent: number; state?: string; label?: string[]; expiringBefore?: string; params?: string; idempotencyKey?: string }) => {
      const labels: Record<string, string> = {};
      for (const l of o.label ?? []) {
        const eq = l.indexOf('=');
        if (eq <= 0) throw new SetlsError('ERR_OP_BAD_REQUEST', `--label must be key=value ('${l}')`);
        labels[l.slice(0, eq)] = l.slice(eq + 1);
      }
      let params: unknown = undefined;
      if (o.params !== undefined) {
        try {
          params = JSON.parse(o.params);
        } catch (e) {
          throw new SetlsError('ERR_OP_BAD_REQUEST', `--params is not JSON: ${(e as Error).message}`);
        }
      }
      const body = {
        name: o.name,
        kind: o.kind,
        selector: { ...(o.state ? { state: o.state } : {}), ...(o.label ? { labels } : {}), ...(o.expiringBefore ? { expiringBefore: o.expiringBefore } : {}) },
        ...(params !== undefined ? { params } : {}),
        ratePerMinute: o.rate,
        abort: { minExecuted: o.abortMin, failurePercent: o.abortPercent },
      };
      const c = await client(o).ok<J>('POST', '/v1/campaigns', body, { idempotencyKey: o.idempotencyKey ?? randomUUID() });
      print(o, c, () => campaignLine(c));
    });

  clientOptions(camp.command('list').description('list campaigns (newest first)'))
    .option('--state <state>', 'running | paused | canceled | aborted | completed')
    .option('--limit <n>', 'page size (≤ 1000)', '100')
    .action(async (o: ClientFlags & { state?: string; limit: string }) => {
      const q = new URLSearchParams();
      if (o.state) q.set('state', o.state);
      q.set('limit', o.limit);
      const page = await client(o).ok<{ items: J[]; next: string | null }>('GET', `/v1/campaigns?${q}`);
      print(o, page, () =>
        table(
          ['CAMPAIGN', 'NAME', 'KIND', 'STATE', 'TARGETED', 'SUCCEEDED', 'FAILED', 'CREATED'],
          page.items.map((c) => {
            const k = c['counters'] as J;
            return [String(c['id']), String(c['name']), String(c['kind']), String(c['state']), String(k['targeted']), String(k['succeeded']), String(k['failed']), short(c['createdAt'])];
          }),
        ),
      );
    });

  clientOptions(camp.command('show').description('show a campaign: state and counters').argument('<id>'))
    .option('--wait', 'follow it until a final state (progress on stderr); exit 0 only when completed')
    .option('--timeout <seconds>', 'with --wait: give up waiting after this long', (v) => Number(v))
    .action(async (id: string, o: ClientFlags & { wait?: boolean; timeout?: number }) => {
      const c = client(o);
      let v = await c.ok<J>('GET', `/v1/campaigns/${idArg(id)}`);
      if (o.wait) {
        const deadline = o.timeout ? Date.now() + o.timeout * 1000 : Infinity;
        let last = '';
        for (;;) {
          const line = campaignLine(v);
          if (line !== last && !o.json) console.error(line);
          last = line;
          if (FINAL.has(String(v['state']))) break;
          if (Date.now() > deadline) throw new SetlsError('ERR_OP_WAIT_TIMEOUT', `campaign ${id} still ${String(v['state'])} after ${o.timeout} s (it goes on)`);
          await new Promise((r) => setTimeout(r, 1000));
          v = await c.ok<J>('GET', `/v1/campaigns/${idArg(id)}`);
        }
      }
      print(o, v, () => `${campaignLine(v)}\n  selector ${JSON.stringify(v['selector'])}  rate ${String(v['ratePerMinute'])}/min  abort ${JSON.stringify(v['abort'])}\n  created ${short(v['createdAt'])} by ${String(v['createdBy'])}, finished ${short(v['finishedAt'])}`);
      if (o.wait && v['state'] !== 'completed') throw new SetlsError('ERR_OP_CAMPAIGN_STATE', `campaign ${id} ${String(v['state'])}${v['abortReason'] ? `: ${String(v['abortReason'])}` : ''}`);
    });

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    clientOptions(camp.command(action).description(`${action} a campaign`).argument('<id>')).action(async (id: string, o: ClientFlags) => {
      const v = await client(o).ok<J>('POST', `/v1/campaigns/${idArg(id)}/${action}`, {});
      print(o, v, () => campaignLine(v));
    });
  }
}
