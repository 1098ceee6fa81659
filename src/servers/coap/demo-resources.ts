/**
 * The demo plug's CoAP resources, sharing the PlugState of the HTTPS plug (a PUT over either
 * protocol switches the same relay). Each is declared to the CoapServer (methods, Content-Formats,
 * body size, current ETag), which answers 4.05 / 4.06 / 4.15 / 4.13 (with Size1) / 4.12 before the
 * handler runs (docs/coap.md):
 *   GET  /status   JSON (Content-Format 50); no ETag (uptime and power change every second)
 *   GET  /relay    'on' | 'off' (text/plain), with an ETag of the relay state (2.03 when the client's is current)
 *   PUT  /relay    'on' | 'off' (text/plain) or JSON {"state":"on"|"off"} (50), at most 256 bytes → 2.04
 *                  with the new state and ETag; If-Match / If-None-Match honoured; a bad body → 4.00
 *   GET  /power    watts (text/plain), Max-Age = the notification period + 1 s; observable: a
 *                  notification every period and on each switch, each with the same Max-Age
 *   GET  /blob     64 KiB of the /bytes/N pattern (application/octet-stream) with a content ETag, for block-wise tests
 *   GET  /.well-known/core   (served by the CoapServer from the links declared here)
 * imports coap/ and servers/https (the shared state and byte pattern).
 */
import { createHash } from 'node:crypto';
import { createCoapServer, type CoapIncomingRequest, type CoapServer, type CoapServerOptions, type CoapServerResponse } from '../../coap/index.js';
import { patternByte, type PlugState } from '../https/demo-plug.js';

export const BLOB_SIZE = 64 * 1024;
const MAX_RELAY_BODY = 256;

/** Same model as the HTTPS plug: 0 W when off, ~1840 W with a slow wobble when on. */
export function plugPowerW(state: PlugState, now = Date.now()): number {
  if (state.relay === 'off') return 0;
  return Math.round((1840 + 60 * Math.sin(now / 7000)) * 10) / 10;
}

/** The entity-tag of /relay's representation: the switch count (4 bytes) and the state (1 byte). */
export function relayEtag(state: PlugState): Uint8Array {
  const t = new Uint8Array(5);
  new DataView(t.buffer).setUint32(0, state.switches >>> 0);
  t[4] = state.relay === 'on' ? 1 : 0;
  return t;
}

/** Max-Age (s) of a /power reading and of each of its notifications: the period plus a second (RFC 7641 §4.3.2). */
export function powerMaxAgeS(intervalMs: number): number {
  return Math.ceil(intervalMs / 1000) + 1;
}

/** The /blob bytes (byte i = patternByte(i), as GET /bytes/65536 over HTTPS). */
export function blobBytes(size = BLOB_SIZE): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = patternByte(i);
  return b;
}

export interface PlugCoapOptions extends CoapServerOptions {
  /** Period of /power notifications, ms. Default 1000. */
  readonly powerIntervalMs?: number;
}

/** Parses a /relay PUT body: 'on' / 'off' (any case, surrounding blanks) or JSON {"state":"on"|"off"}. */
export function parseRelayBody(payload: Uint8Array, contentFormat: number | undefined): { state: 'on' | 'off' } | { error: string; code: string } {
  if (contentFormat !== undefined && contentFormat !== 0 && contentFormat !== 50) {
    return { code: '4.15', error: `Content-Format ${contentFormat} not supported: send text/plain (0) 'on'/'off' or application/json (50)` };
  }
  if (payload.length > MAX_RELAY_BODY) return { code: '4.13', error: `body larger than ${MAX_RELAY_BODY} bytes` };
  const text = Buffer.from(payload).toString('utf8').trim();
  if (contentFormat !== 50 && (text.toLowerCase() === 'on' || text.toLowerCase() === 'off')) return { state: text.toLowerCase() as 'on' | 'off' };
  if (contentFormat === 50 || text.startsWith('{')) {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      return { code: '4.00', error: `body is not valid JSON: ${(e as Error).message}` };
    }
    const st = (body as { state?: unknown } | null)?.state;
    if (typeof body !== 'object' || body === null || Array.isArray(body) || (st !== 'on' && st !== 'off')) {
      return { code: '4.00', error: 'expected {"state":"on"} or {"state":"off"}' };
    }
    const extra = Object.keys(body).filter((k) => k !== 'state');
    if (extra.length) return { code: '4.00', error: `unknown field(s): ${extra.join(', ')}` };
    return { state: st };
  }
  return { code: '4.00', error: `expected 'on', 'off' or {"state":"on"|"off"}, got ${JSON.stringify(text.slice(0, 40))}` };
}

/** A CoapServer serving the plug (state shared with the HTTPS plug), with its /.well-known/core links. */
export function createPlugCoapServer(state: PlugState, opts: PlugCoapOptions = {}): CoapServer {
  const interval = opts.powerIntervalMs ?? 1000;
  const switchWatchers = new Set<() => void>();
  const maxAgeS = powerMaxAgeS(interval);
  const blob = blobBytes();
  const blobEtag = createHash('sha256').update(blob).digest().subarray(0, 8);
  const server = createCoapServer({ ...opts, maxBodySize: Math.max(BLOB_SIZE, opts.maxBodySize ?? 0) }, (req, res) => handle(req, res));
  server.resource('/status', { methods: ['GET'], produces: [50], link: { rt: 'setls.plug.status', if: 'core.rp', title: 'plug status' } });
  server.resource('/relay', {
    methods: ['GET', 'PUT'],
    produces: [0],
    consumes: { PUT: [0, 50] },
    maxBodySize: MAX_RELAY_BODY,
    etag: () => relayEtag(state),
    link: { rt: 'setls.plug.relay', if: 'core.a' },
  });
  server.resource('/power', { methods: ['GET'], produces: [0], link: { rt: 'setls.plug.power', if: 'core.s', obs: true } });
  server.resource('/blob', { methods: ['GET'], produces: [42], etag: () => blobEtag, link: { rt: 'setls.blob', sz: BLOB_SIZE } });

  const methodNotAllowed = (res: CoapServerResponse, allowed: string): void => {
    res.code = '4.05';
    res.end(`use ${allowed}`);
  };

  function handle(req: CoapIncomingRequest, res: CoapServerResponse): void {
    const now = Date.now();
    switch (req.pathname) {
      case '/status': {
        if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
        res.setOption('Content-Format', 50);
        res.end(
          JSON.stringify({
            device: 'setls demo plug',
            relay: state.relay,
            powerW: plugPowerW(state, now),
            switches: state.switches,
            uptimeS: Math.round((now - state.startedAt) / 1000),
            transport: coapTransportOf(req),
          }),
        );
        return;
      }
      case '/relay': {
        if (req.method === 'GET') {
          res.setOption('Content-Format', 0);
          res.setOption('ETag', relayEtag(state));
          res.end(state.relay);
          return;
        }
        if (req.method !== 'PUT') return methodNotAllowed(res, "GET or PUT with 'on'/'off'");
        const r = parseRelayBody(req.payload, req.headers['Content-Format']);
        if ('error' in r) {
          res.code = r.code;
          if (r.code === '4.13') res.setOption('Size1', MAX_RELAY_BODY);
          res.end(r.error);
          return;
        }
        if (state.relay !== r.state) {
          state.switches++;
          state.relay = r.state;
          for (const w of [...switchWatchers]) w();
        }
        res.code = '2.04';
        res.setOption('Content-Format', 0);
        res.setOption('ETag', relayEtag(state));
        res.end(state.relay);
        return;
      }
      case '/power': {
        if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
        res.setOption('Content-Format', 0);
        // the options stay on the response: every notification carries the same Max-Age (RFC 7641 §4.3.2)
        res.setOption('Max-Age', maxAgeS);
        const reading = (): string => plugPowerW(state, Date.now()).toFixed(1);
        if (!res.observe) {
          res.end(reading());
          return;
        }
        const notify = (): void => {
          if (!res.destroyed && !res.writableEnded) res.write(reading());
        };
        const timer = setInterval(notify, interval);
        timer.unref();
        switchWatchers.add(notify);
        res.once('close', () => {
          clearInterval(timer);
          switchWatchers.delete(notify);
        });
        notify();
        return;
      }
      case '/blob': {
        if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
        res.setOption('Content-Format', 42);
        res.setOption('ETag', blobEtag);
        res.end(blob);
        return;
      }
      default:
        res.code = '4.04';
        res.end(`no resource ${req.pathname}`);
    }
  }

  return server;
}

/** The transport a request came over: `coaps` (DTLS, serveCoapOverDtls marks its peers) or `coaps+tcp`. */
export function coapTransportOf(req: CoapIncomingRequest): 'coaps' | 'coaps+tcp' {
  return (req.peer as { transport?: string }).transport === 'coaps' ? 'coaps' : 'coaps+tcp';
}
