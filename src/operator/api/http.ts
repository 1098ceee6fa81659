/**
 * operator/api/http: the small HTTP toolkit of the REST API — bounded JSON bodies with clear errors,
 * JSON and error responses in one shape (`{ error: { code, message, details? } }`), canonical JSON
 * (for idempotency hashes), query parsing helpers. imports errors, store/types.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OpError, OpErrorCode } from '../errors.js';
import type { Json, JsonObject } from '../store/types.js';

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** Reads the whole body, refusing more than `limit` bytes (413) — without buffering past the limit. */
export function readBody(req: IncomingMessage, limit: number, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new OpError(OpErrorCode.bodyTooLarge, `request body of ${declared} bytes is over the limit of ${limit}`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const timer = setTimeout(() => finish(new OpError(OpErrorCode.requestTimeout, `request body not received within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err: Error | null, body?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.removeAllListeners('data');
        req.resume();
        reject(err);
      } else resolve(body!);
    };
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) finish(new OpError(OpErrorCode.bodyTooLarge, `request body is over the limit of ${limit} bytes`));
      else chunks.push(c);
    });
    req.on('end', () => finish(null, Buffer.concat(chunks)));
    req.on('error', (e) => finish(e));
    req.on('aborted', () => finish(new OpError(OpErrorCode.badRequest, 'request aborted')));
  });
}

/** Parses a JSON object body; an empty body is `{}`; with `arrayKey`, an array body is `{ [arrayKey]: array }`. */
export function parseJsonBody(req: IncomingMessage, raw: Buffer, arrayKey?: string): JsonObject {
  if (raw.length === 0) return {};
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new OpError(OpErrorCode.unsupportedMediaType, `send JSON with Content-Type: application/json (got '${type || 'none'}')`);
  }
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw new OpError(OpErrorCode.badJson, `the body is not valid JSON: ${(e as Error).message}`);
  }
  if (arrayKey && Array.isArray(v)) return { [arrayKey]: v as Json[] };
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new OpError(OpErrorCode.badJson, 'the body must be a JSON object');
  return v as JsonObject;
}

/** JSON with object keys sorted at every level (stable hashing of equivalent bodies). */
export function canonicalJson(v: Json): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  return `{${Object.keys(v)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k]!)}`)
    .join(',')}}`;
}

export interface Reply {
  readonly status: number;
  readonly body?: Json;
  /** A raw body instead of JSON (certificates, CRLs, metrics). */
  readonly raw?: { readonly type: string; readonly data: Buffer | string };
  readonly headers?: Record<string, string>;
  /** A long-lived response the route writes itself (server-sent events): called instead of a body. */
  readonly stream?: (req: IncomingMessage, res: ServerResponse) => void;
}

export function send(res: ServerResponse, r: Reply): void {
  if (res.headersSent) return;
  const headers: Record<string, string> = { 'cache-control': 'no-store', ...r.headers };
  if (r.raw) {
    const data = typeof r.raw.data === 'string' ? Buffer.from(r.raw.data, 'utf8') : r.raw.data;
    res.writeHead(r.status, { ...headers, 'content-type': r.raw.type, 'content-length': String(data.length) });
    res.end(data);
    return;
  }
  const data = r.body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(r.body) + '\n', 'utf8');
  res.writeHead(r.status, { ...headers, ...(r.body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }), 'content-length': String(data.length) });
  res.end(data);
}

export function errorReply(e: OpError): Reply {
  const body: JsonObject = { error: { code: e.code, message: e.message, ...(e.details ? { details: e.details as JsonObject } : {}) } };
  const headers: Record<string, string> = e.status === 401 ? { 'www-authenticate': 'Bearer realm="setls-operator"' } : {};
  return { status: e.status, body, headers };
}

export function queryInt(q: URLSearchParams, key: string, min: number, max: number, dflt: number): number {
  const v = q.get(key);
  if (v === null || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new OpError(OpErrorCode.badRequest, `${key} must be an integer ${min}..${max}`);
  return n;
}

/** A time given as ISO 8601 or epoch milliseconds. */
export function queryTime(q: URLSearchParams, key: string): number | undefined {
  const v = q.get(key);
  if (v === null || v === '') return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(n)) throw new OpError(OpErrorCode.badRequest, `${key} must be an ISO 8601 time or epoch milliseconds`);
  return n;
}
