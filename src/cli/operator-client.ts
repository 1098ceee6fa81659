/**
 * cli/operator-client: the CLI's HTTPS client of the operator API — where the operator is (--url,
 * else D/serve.json written by `serve`, else https://localhost:9443), which CA to trust (--ca, else
 * D/tls-ca.crt), which token (--token-file, else SETLS_OPERATOR_TOKEN, else D/admin.token); every
 * API refusal becomes an error carrying its ERR_OP_ code. imports operator/ (paths, errors).
 */
import { request } from 'node:https';
import { existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { SetlsError } from '../bytes/index.js';
import { DEFAULT_OPERATOR_PORT, operatorPaths } from '../operator/paths.js';

export interface ClientOptions {
  readonly dir?: string;
  readonly url?: string;
  readonly ca?: string;
  readonly tokenFile?: string;
}

export interface ApiResponse {
  readonly status: number;
  readonly json: unknown;
  readonly headers: Record<string, string | string[] | undefined>;
}

export class OperatorClient {
  readonly url: string;
  private readonly ca: string;
  private readonly token: string;

  constructor(o: ClientOptions) {
    const paths = operatorPaths(o.dir);
    let url = o.url;
    if (!url && existsSync(paths.serveInfo)) {
      try {
        url = (JSON.parse(readFileSync(paths.serveInfo, 'utf8')) as { url?: string }).url;
      } catch {
        url = undefined;
      }
    }
    this.url = (url ?? `https://localhost:${DEFAULT_OPERATOR_PORT}`).replace(/\/+$/, '');
    const caFile = o.ca ?? paths.tlsCaCert;
    if (!existsSync(caFile)) throw new SetlsError('ERR_OP_STATE_MISSING', `no CA file ${caFile} to trust the operator with (--ca FILE, or --dir of an initialised operator)`);
    this.ca = readFileSync(caFile, 'utf8');
    const envToken = process.env['SETLS_OPERATOR_TOKEN'];
    const tokenFile = o.tokenFile ?? paths.adminToken;
    if (o.tokenFile === undefined && envToken) this.token = envToken.trim();
    else if (existsSync(tokenFile)) this.token = readFileSync(tokenFile, 'utf8').trim();
    else throw new SetlsError('ERR_OP_STATE_MISSING', `no API token: ${tokenFile} is missing (--token-file FILE or SETLS_OPERATOR_TOKEN)`);
  }

  call(method: 'GET' | 'POST', path: string, body?: unknown, opts: { idempotencyKey?: string; timeoutMs?: number } = {}): Promise<ApiResponse> {
    const target = new URL(this.url + path);
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
    return new Promise((resolve, reject) => {
      const req = request(
        {
          protocol: target.protocol,
          hostname: target.hostname.replace(/^\[|\]$/g, ''),
          port: target.port,
          path: target.pathname + target.search,
          method,
          ca: this.ca,
          headers: {
            authorization: `Bearer ${this.token}`,
            accept: 'application/json',
            ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}),
            ...(method === 'POST' ? { 'idempotency-key': opts.idempotencyKey ?? randomUUID() } : {}),
          },
          timeout: opts.timeoutMs ?? 30_000,
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown = null;
            try {
              json = text ? JSON.parse(text) : null;
            } catch {
              json = text;
            }
            resolve({ status: res.statusCode ?? 0, json, headers: res.headers });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new SetlsError('ERR_OP_REQUEST_TIMEOUT', `no answer from ${this.url} within ${opts.timeoutMs ?? 30_000} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof SetlsError) reject(e);
        else reject(new SetlsError('ERR_OP_UNREACHABLE', `cannot reach the operator at ${this.url}: ${e.code ?? ''} ${e.message} (is 'setls operator serve' running? --url)`));
      });
      if (data) req.write(data);
      req.end();
    });
  }

  /** `call` that throws the API's error (code and message) on any status ≥ 400. */
  async ok<T = Record<string, unknown>>(method: 'GET' | 'POST', path: string, body?: unknown, opts: { idempotencyKey?: string } = {}): Promise<T> {
    const r = await this.call(method, path, body, opts);
    if (r.status >= 400) {
      const err = (r.json as { error?: { code?: string; message?: string } } | null)?.error;
      throw new SetlsError(err?.code ?? `HTTP_${r.status}`, err?.message ?? `HTTP ${r.status}`);
    }
    return r.json as T;
  }
}
