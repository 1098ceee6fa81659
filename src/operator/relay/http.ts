/**
 * operator/relay/http: the HTTP side of the relay endpoint — reading one header exactly once, a
 * bounded body with a deadline, and the answers (JSON errors, 204, script) with X-Admin-Protocol on
 * every one. imports relay/ and node:http types.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RELAY_CONTENT_TYPE, RELAY_PROTOCOL, RelayError, RelayHeader, encodeErrorBody } from '../../relay/index.js';

/** The one value of header `name`; undefined when absent; ERR_RELAY_HEADER when repeated. */
export function oneHeader(req: IncomingMessage, name: string): string | undefined {
  const all = req.headersDistinct[name];
  if (all === undefined || all.length === 0) return undefined;
  if (all.length > 1) throw new RelayError('ERR_RELAY_HEADER', `${name}: sent ${all.length} times`);
  return all[0]!;
}

export function requiredHeader(req: IncomingMessage, name: string): string {
  const v = oneHeader(req, name);
  if (v === undefined) throw new RelayError('ERR_RELAY_HEADER', `${name}: missing`);
  return v;
}

/** X-Admin-Protocol must be setls-remote-admin/1. */
export function checkProtocol(req: IncomingMessage): void {
  const v = oneHeader(req, RelayHeader.protocol);
  if (v !== RELAY_PROTOCOL) throw new RelayError('ERR_RELAY_PROTOCOL', `${RelayHeader.protocol}: expected ${RELAY_PROTOCOL}`);
}

/** Content-Type must be application/json (parameters such as charset=utf-8 allowed). */
export function checkJson(req: IncomingMessage): void {
  const v = oneHeader(req, RelayHeader.contentType);
  const type = v?.split(';')[0]!.trim().toLowerCase();
  if (type !== RELAY_CONTENT_TYPE) throw new RelayError('ERR_RELAY_MEDIA_TYPE', `Content-Type: expected ${RELAY_CONTENT_TYPE}`);
}

/** The request body as UTF-8 text: at most `max` bytes (ERR_RELAY_TOO_LARGE), within `timeoutMs`. */
export function readBody(req: IncomingMessage, max: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      reject(new RelayError('ERR_RELAY_TOO_LARGE', `a body of ${declared} bytes; at most ${max}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (e?: Error, text?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (e) reject(e);
      else resolve(text!);
    };
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > max) {
        finish(new RelayError('ERR_RELAY_TOO_LARGE', `a body of more than ${max} bytes`));
        return;
      }
      chunks.push(c);
    };
    const onEnd = (): void => {
      const buf = Buffer.concat(chunks);
      const text = new TextDecoder('utf-8', { fatal: true });
      try {
        finish(undefined, text.decode(buf));
      } catch {
        finish(new RelayError('ERR_RELAY_BODY', 'the body is not UTF-8'));
      }
    };
    const onError = (e: Error): void => finish(e);
    const onAborted = (): void => finish(new Error('the agent closed the request'));
    const timer = setTimeout(() => finish(new RelayError('ERR_RELAY_BODY', `no complete body within ${timeoutMs} ms`)), timeoutMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

function base(res: ServerResponse): void {
  res.setHeader(RelayHeader.protocol, RELAY_PROTOCOL);
  res.setHeader('cache-control', 'no-store');
}

/** An error answer; `close` when the request body was not read (the connection is then closed). */
export function sendError(res: ServerResponse, e: RelayError, close: boolean): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  base(res);
  const body = encodeErrorBody({ code: e.code, message: e.message });
  res.statusCode = e.httpStatus;
  if (e.code === 'ERR_RELAY_UNAUTHORIZED') res.setHeader('www-authenticate', 'Bearer realm="setls-operator"');
  if (e.code === 'ERR_RELAY_METHOD') res.setHeader('allow', 'POST');
  if (close) res.setHeader('connection', 'close');
  res.setHeader(RelayHeader.contentType, RELAY_CONTENT_TYPE);
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}

/** 204: nothing to do (poll; Retry-After given) or session over (Next-URI; none). */
export function sendNoContent(res: ServerResponse, retryAfterS?: number): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  base(res);
  if (retryAfterS !== undefined) res.setHeader(RelayHeader.retryAfter, String(retryAfterS));
  res.statusCode = 204;
  res.end();
}

/** 200 with a script. */
export function sendScript(res: ServerResponse, headers: Record<string, string>, body: string): boolean {
  if (res.headersSent || res.writableEnded || res.destroyed) return false;
  base(res);
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader(RelayHeader.contentType, RELAY_CONTENT_TYPE);
  res.setHeader('content-length', Buffer.byteLength(body));
  res.statusCode = 200;
  res.end(body);
  return true;
}

/** True while the agent still waits on `res`. */
export function open(res: ServerResponse): boolean {
  return !res.headersSent && !res.writableEnded && !res.destroyed && !res.socket?.destroyed;
}
