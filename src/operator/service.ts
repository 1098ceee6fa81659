/**
 * operator/service: a running operator — the opened state folder, the HTTPS API, the device-agent
 * relay (RelayHub mounted at /admin/v1/, agents authenticated by their host tokens, heartbeats
 * recording which host reaches which card), the job executors (every kind, through the relay), the
 * job runner, the sweeper that queues the deletion of re-keyed keys after their grace, and the
 * periodic CRL refresh, started and stopped together. `setls operator serve` is this plus signal
 * handling; `setup` may mount more or override executors before listening.
 * The EST resources (est/routes.ts) are mounted at /.well-known/est/, the web console at /console.
 * The audits run periodically when asked (auditIntervalMs; one node at a time through their lease
 * in the store).
 * imports operator, api/server, relay/, executors/, est/routes, auth/agent-tokens, paths, and pino.
 */
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import pino from 'pino';
import { toHex } from '../bytes/index.js';
import { OperatorServer } from './api/server.js';
import { authenticateAgent } from './auth/agent-tokens.js';
import { DELETE_RETIRED_KIND, registerExecutors } from './executors/index.js';
import { EST_PREFIX, estHandler } from './est/routes.js';
import { mountConsole, type SessionOptions } from './console/index.js';
import { Operator, type OpenOptions } from './operator.js';
import { RelayHub, type RelayHubOptions } from './relay/index.js';

export interface StartOptions extends OpenOptions {
  readonly host?: string;
  readonly port?: number;
  /** Run the job runner in this process (default true). */
  readonly runJobs?: boolean;
  /** Write D/serve.json (URL, PID) for the CLI (default true). */
  readonly writeServeInfo?: boolean;
  /** Quiet logs (tests). */
  readonly quiet?: boolean;
  /** Mount extra endpoints / register executors before listening. */
  readonly setup?: (s: { operator: Operator; server: OperatorServer; relay: RelayHub }) => void | Promise<void>;
  /** Relay tuning (poll and session holds, ms). */
  readonly relay?: Pick<RelayHubOptions, 'pollHoldMs' | 'sessionHoldMs' | 'maxDeliveries'>;
  /** Deadline of one admin script through the agent, ms (default 120 000). */
  readonly scriptTimeoutMs?: number;
  /** How often the sweeper looks for retired keys to delete, ms (default 30 000). */
  readonly sweepMs?: number;
  /** Audit runs every this many ms (one node at a time; default: none — `operator serve` asks for 15 min). */
  readonly auditIntervalMs?: number;
  /** Web console sessions (idle / absolute expiry, clock); docs/console.md. */
  readonly console?: SessionOptions;
}

export interface RunningOperator {
  readonly operator: Operator;
  readonly server: OperatorServer;
  readonly relay: RelayHub;
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

export async function startOperator(o: StartOptions): Promise<RunningOperator> {
  const log = pino({ level: o.quiet ? 'silent' : (process.env['SETLS_LOG_LEVEL'] ?? 'info'), base: { svc: 'setls-operator' } }, pino.destination(2));
  const operator = await Operator.open({ ...o, log: o.log ?? log });
  const server = new OperatorServer({ operator, host: o.host, port: o.port, log });
  const store = operator.store;
  const lastSeen = new Map<string, { host: string; at: number }>();
  // Agent routing: each poll records that the host's agent polls this node; a host newly attached
  // here wakes the runner, which now claims the jobs of its cards (store claimJob `node`).
  const attachedHere = new Map<string, number>();
  const runner = operator.runner;
  const relay = new RelayHub({
    ...o.relay,
    authenticateAgent: (token, claimed) => authenticateAgent(store, token, claimed),
    onHeartbeat: (hostId, _hb, seList) => {
      const now = operator.now();
      const since = attachedHere.get(hostId);
      const fresh = since === undefined || now - since > 30_000;
      if (fresh) attachedHere.set(hostId, now);
      void store
        .touchHost(hostId, null, now, runner.owner)
        .then(() => fresh && runner.poke())
        .catch(() => undefined);
      for (const uid of seList) {
        const key = toHex(uid);
        const prev = lastSeen.get(key);
        if (prev && prev.host === hostId && now - prev.at < 10_000) continue; // at most every 10 s per card
        lastSeen.set(key, { host: hostId, at: now });
        void (async () => {
          const card = await store.cardByUid(uid);
          if (!card) return;
          await store.updateCard(card.id, { hostId, lastSeenAt: now }, now);
          if (card.hostId !== hostId) runner.poke(); // the card moved to this host: its jobs may be ours now
        })().catch((e: unknown) => log.warn({ err: e }, 'heartbeat not recorded'));
      }
    },
    log: (line) => log.info(line),
  });
  server.mount('/admin/v1/', (req, res) => {
    relay.handleRelay(req, res);
  });
  server.mount(EST_PREFIX, estHandler(operator));
  mountConsole(server, store, o.console);
  registerExecutors(operator.runner, { operator, relay, scriptTimeoutMs: o.scriptTimeoutMs, log: (line) => log.info(line) });
  let crlTimer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  try {
    await o.setup?.({ operator, server, relay });
    await operator.revocation.refreshIfDue();
    void operator.revocation.warm().catch((e: unknown) => log.error({ err: e }, 'CRL cache warm-up failed'));
    const { port, url } = await server.listen();
    operator.listeningUrl = url;
    // The CRL must never go stale: refresh when half its validity is gone (checked every minute).
    crlTimer = setInterval(() => void operator.revocation.refreshIfDue().catch((e: unknown) => log.error({ err: e }, 'CRL refresh failed')), 60_000);
    crlTimer.unref();
    if (o.runJobs ?? true) {
      operator.runner.start();
      operator.campaigns.start();
      const sweep = (): void => void sweepRetired(operator).catch((e: unknown) => log.error({ err: e }, 'retired-key sweep failed'));
      sweepTimer = setInterval(sweep, o.sweepMs ?? 30_000);
      sweepTimer.unref();
      sweep();
    }
    if (o.auditIntervalMs) operator.audits.start(o.auditIntervalMs);
    const info = operator.paths.serveInfo;
    if (o.writeServeInfo ?? true) writeFileSync(info, JSON.stringify({ url, port, pid: process.pid, startedAt: new Date().toISOString() }) + '\n');
    log.info({ url, dir: operator.paths.dir, executors: operator.runner.kinds() }, 'operator serving');
    let stopped = false;
    return {
      operator,
      server,
      relay,
      port,
      url,
      async stop() {
        if (stopped) return;
        stopped = true;
        clearInterval(crlTimer);
        clearInterval(sweepTimer);
        await server.close();
        await relay.close();
        await operator.close();
        if (o.writeServeInfo ?? true) rmSync(info, { force: true });
      },
    };
  } catch (e) {
    clearInterval(crlTimer);
    clearInterval(sweepTimer);
    await relay.close();
    await operator.close();
    throw e;
  }
}

/**
 * Queues a `delete-retired` job for each card holding a retired key whose re-key grace is over
 * (one per identity: its id is the job's idempotency key, so a job is never queued twice).
 */
export async function sweepRetired(operator: Operator): Promise<number> {
  const now = operator.now();
  let queued = 0;
  for (const i of await operator.store.identitiesDueForDeletion(now, 100)) {
    const key = `${DELETE_RETIRED_KIND}:${i.id}`;
    if (await operator.store.jobByIdempotencyKey(key)) continue;
    try {
      await operator.store.insertJob({ id: randomUUID(), cardId: i.cardId, kind: DELETE_RETIRED_KIND, params: { identity: i.id }, maxAttempts: 5, deadlineAt: now + 7 * 86_400_000, idempotencyKey: key, createdBy: 'sweeper', createdAt: now });
      queued++;
    } catch {
      // another process queued it meanwhile (unique idempotency key)
    }
  }
  if (queued) operator.runner.poke();
  return queued;
}
