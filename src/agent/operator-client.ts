/**
 * agent/operator-client: the device agent's HTTPS client of the operator's relay endpoint
 * (setls-remote-admin/1). node:https with the operator's CA (the agent trusts nothing else for this
 * connection), keep-alive, a bearer token read from its source at every request, a deadline on every
 * request, bounded response bodies, and strict checks of what the operator answers: a Next-URI must
 * be the operator's own relative path (the bearer token never goes anywhere else).
 * imports bytes/, relay/ and node built-ins.
 */
import https from 'node:https';
import { SetlsError } from '../bytes/index.js';
import {
  RELAY_CONTENT_TYPE,
  RELAY_PROTOCOL,
  RelayHeader,
  RelayLimits,
  RelayPath,
  decodeErrorBody,
  decodeScriptBody,
  encodePollBody,
  encodeResultBody,
  formatBearer,
  formatFrom,
  formatNextUri,
  formatSeId,
  formatSeList,
  parseAid,
  parseNextUri,
  parseRetryAfter,
  parseSeId,
  type Heartbeat,
  type ScriptStatus,
} from '../relay/index.js';

export interface OperatorClientOptions {
  /** The operator's base URL: https://host:port (no path, query or credentials). */
  readonly url: string | URL;
  /** PEM of the CA(s) that issued the operator's certificate (default: the system's roots). */
  readonly ca?: string | Uint8Array;
  /** The bearer token, read at each request (a token file can be rotated). */
  readonly token?: () => string | undefined;
  readonly hostId: string;
  /** Deadline of one request, ms (default 40000; above the operator's long-poll hold). */
  readonly requestTimeoutMs?: number;
}

/** A script delivered by the operator. */
export interface DeliveredScript {
  readonly token: string;
  readonly uid: Uint8Array;
  readonly aid: Uint8Array;
  readonly delayS: number;
  readonly capdus: readonly Uint8Array[];
  /** Set when the script's headers were valid but its body was not: the agent answers script-format-error. */
  readonly formatError?: string;
}

export type OperatorAnswer = { readonly kind: 'script'; readonly script: DeliveredScript } | { readonly kind: 'idle'; readonly retryAfterS: number } | { readonly kind: 'end' };

/** An HTTP answer the agent cannot use: `status` (0 for network failures) and the operator's code. */
export class OperatorError extends SetlsError {
  constructor(
    code: string,
    message: string,
    readonly status: number,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'OperatorError';
  }
}

export function parseOperatorUrl(u: string | URL): URL {
  let url: URL;
  try {
    url = new URL(String(u));
  } catch {
    throw new SetlsError('ERR_AGENT_OPTION', `--operator: '${String(u).slice(0, 80)}' is not a URL`);
  }
  if (url.protocol !== 'https:') throw new SetlsError('ERR_AGENT_OPTION', '--operator: the operator URL must be https:// (the bearer token never travels in clear)');
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) {
    throw new SetlsError('ERR_AGENT_OPTION', '--operator: give the operator as https://host:port, without path, query or credentials');
  }
  return url;
}

export class OperatorClient {
  private readonly url: URL;
  private readonly agent: https.Agent;
  private readonly timeoutMs: number;
  private readonly requests = new Set<import('node:http').ClientRequest>();

  constructor(private readonly o: OperatorClientOptions) {
    this.url = parseOperatorUrl(o.url);
    formatFrom(o.hostId); // validates
    this.timeoutMs = o.requestTimeoutMs ?? 40_000;
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 2, ...(o.ca ? { ca: typeof o.ca === 'string' ? o.ca : Buffer.from(o.ca) } : {}) });
  }

  /** The operator's origin (for logs). */
  get origin(): string {
    return this.url.origin;
  }

  /** POST /admin/v1/poll: a script, or idle with the Retry-After to honour. */
  async poll(seList: readonly Uint8Array[], heartbeat: Heartbeat, resume: boolean): Promise<OperatorAnswer> {
    const headers: Record<string, string> = { [RelayHeader.seList]: formatSeList(seList) };
    if (resume) headers[RelayHeader.resume] = 'true';
    const r = await this.request(RelayPath.poll, headers, encodePollBody(heartbeat), RelayLimits.maxBody);
    if (r.status === 204) {
      const ra = r.headers[RelayHeader.retryAfter];
      return { kind: 'idle', retryAfterS: typeof ra === 'string' ? parseRetryAfter(ra) : 1 };
    }
    return this.scriptAnswer(r);
  }

  /** POST <Next-URI> with the answers: the next script, or the end of the session. */
  async answer(token: string, uid: Uint8Array, status: ScriptStatus, rapdus: readonly Uint8Array[], resume = false): Promise<OperatorAnswer> {
    const headers: Record<string, string> = { [RelayHeader.targetedSe]: formatSeId(uid), [RelayHeader.scriptStatus]: status };
    if (resume) headers[RelayHeader.resume] = 'true';
    const r = await this.request(formatNextUri(token), headers, encodeResultBody(rapdus), RelayLimits.maxBody);
    if (r.status === 204) return { kind: 'end' };
    return this.scriptAnswer(r);
  }

  private scriptAnswer(r: RawAnswer): OperatorAnswer {
    if (r.status !== 200) throw new OperatorError('ERR_AGENT_OPERATOR_ANSWER', `the operator answered HTTP ${r.status}`, r.status);
    const ct = r.headers[RelayHeader.contentType];
    if (typeof ct !== 'string' || ct.split(';')[0]!.trim().toLowerCase() !== RELAY_CONTENT_TYPE) throw new OperatorError('ERR_AGENT_OPERATOR_ANSWER', 'a script that is not application/json', r.status);
    const h = (name: string): string => {
      const v = r.headers[name];
      if (typeof v !== 'string') throw new OperatorError('ERR_AGENT_OPERATOR_ANSWER', `a script without ${name}`, r.status);
      return v;
    };
    const token = parseNextUri(h(RelayHeader.nextUri));
    const uid = parseSeId(h(RelayHeader.targetedSe));
    const aid = parseAid(h(RelayHeader.targetedApplication));
    let body;
    try {
      body = decodeScriptBody(r.body);
    } catch (e) {
      // A script this agent cannot read: answered as such on its Next-URI (not retried forever).
      return { kind: 'script', script: { token, uid, aid, delayS: 0, capdus: [], formatError: (e as Error).message } };
    }
    return { kind: 'script', script: { token, uid, aid, delayS: body.delayS, capdus: body.capdus } };
  }

  private request(path: string, extra: Record<string, string>, body: string, maxBody: number): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      const token = this.o.token?.();
      const headers: Record<string, string | number> = {
        [RelayHeader.protocol]: RELAY_PROTOCOL,
        [RelayHeader.from]: formatFrom(this.o.hostId),
        [RelayHeader.contentType]: RELAY_CONTENT_TYPE,
        'content-length': Buffer.byteLength(body),
        ...extra,
      };
      if (token !== undefined) headers[RelayHeader.authorization] = formatBearer(token);
      let settled = false;
      const done = (e?: Error, a?: RawAnswer): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.requests.delete(req);
        if (e) reject(e);
        else resolve(a!);
      };
      const req = https.request(
        { protocol: 'https:', hostname: this.url.hostname.replace(/^\[|\]$/g, ''), port: this.url.port || 443, method: 'POST', path, headers, agent: this.agent },
        (res) => {
          const proto = res.headers[RelayHeader.protocol];
          if (proto !== RELAY_PROTOCOL) {
            res.destroy();
            done(new OperatorError('ERR_AGENT_OPERATOR_ANSWER', `HTTP ${res.statusCode} without ${RelayHeader.protocol}: ${RELAY_PROTOCOL} (not the operator's relay endpoint)`, res.statusCode ?? 0));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > maxBody) {
              res.destroy();
              done(new OperatorError('ERR_AGENT_OPERATOR_ANSWER', `an answer of more than ${maxBody} bytes`, res.statusCode ?? 0));
              return;
            }
            chunks.push(c);
          });
          res.on('error', (e) => done(new OperatorError('ERR_AGENT_NETWORK', `reading the operator's answer: ${e.message}`, 0, { cause: e })));
          res.on('aborted', () => done(new OperatorError('ERR_AGENT_NETWORK', "the operator's answer was cut", 0)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 400) {
              const err = decodeErrorBody(text);
              done(new OperatorError(err?.code ?? 'ERR_AGENT_OPERATOR_ANSWER', `the operator answered HTTP ${status}${err ? ` ${err.code}: ${err.message}` : ''}`, status));
              return;
            }
            done(undefined, { status, headers: res.headers, body: text });
          });
        },
      );
      this.requests.add(req);
      const timer = setTimeout(() => {
        req.destroy();
        done(new OperatorError('ERR_AGENT_NETWORK', `no answer from the operator within ${this.timeoutMs} ms`, 0));
      }, this.timeoutMs);
      req.on('error', (e) => done(new OperatorError('ERR_AGENT_NETWORK', `cannot reach the operator at ${this.url.origin}: ${(e as NodeJS.ErrnoException).code ?? e.message}`, 0, { cause: e })));
      req.end(body);
    });
  }

  /** Aborts requests in flight and closes the kept-alive connections. */
  close(): void {
    for (const r of this.requests) r.destroy(new OperatorError('ERR_AGENT_STOPPED', 'the agent is stopping', 0));
    this.requests.clear();
    this.agent.destroy();
  }
}

interface RawAnswer {
  readonly status: number;
  readonly headers: import('node:http').IncomingHttpHeaders;
  readonly body: string;
}
