/**
 * operator/service: a running operator — the opened state folder, the HTTPS API, the job runner and
 * the periodic CRL refresh, started and stopped together. `setls operator serve` is this plus
 * signal handling; the integration wires the device-agent relay (`server.mount('/admin/v1/', …)`)
 * and the job executors (`operator.runner.register(kind, executor)`) in `setup`, before listening.
 * imports operator, api/server, paths, and pino.
 */
import { rmSync, writeFileSync } from 'node:fs';
import pino from 'pino';
import { OperatorServer } from './api/server.js';
import { Operator, type OpenOptions } from './operator.js';

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
  readonly setup?: (s: { operator: Operator; server: OperatorServer }) => void | Promise<void>;
}

export interface RunningOperator {
  readonly operator: Operator;
  readonly server: OperatorServer;
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
}

export async function startOperator(o: StartOptions): Promise<RunningOperator> {
  const log = pino({ level: o.quiet ? 'silent' : (process.env['SETLS_LOG_LEVEL'] ?? 'info'), base: { svc: 'setls-operator' } }, pino.destination(2));
  const operator = await Operator.open({ ...o, log: o.log ?? log });
  const server = new OperatorServer({ operator, host: o.host, port: o.port, log });
  let crlTimer: NodeJS.Timeout | undefined;
  try {
    await o.setup?.({ operator, server });
    await operator.revocation.refreshIfDue();
    void operator.revocation.warm().catch((e: unknown) => log.error({ err: e }, 'CRL cache warm-up failed'));
    const { port, url } = await server.listen();
    operator.listeningUrl = url;
    // The CRL must never go stale: refresh when half its validity is gone (checked every minute).
    crlTimer = setInterval(() => void operator.revocation.refreshIfDue().catch((e: unknown) => log.error({ err: e }, 'CRL refresh failed')), 60_000);
    crlTimer.unref();
    if (o.runJobs ?? true) operator.runner.start();
    const info = operator.paths.serveInfo;
    if (o.writeServeInfo ?? true) writeFileSync(info, JSON.stringify({ url, port, pid: process.pid, startedAt: new Date().toISOString() }) + '\n');
    log.info({ url, dir: operator.paths.dir, executors: operator.runner.kinds() }, 'operator serving');
    let stopped = false;
    return {
      operator,
      server,
      port,
      url,
      async stop() {
        if (stopped) return;
        stopped = true;
        clearInterval(crlTimer);
        await server.close();
        await operator.close();
        if (o.writeServeInfo ?? true) rmSync(info, { force: true });
      },
    };
  } catch (e) {
    clearInterval(crlTimer);
    await operator.close();
    throw e;
  }
}
