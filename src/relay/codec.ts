/**
 * relay/codec: the JSON bodies of setls-remote-admin/1 (GP SERAM's shapes), encoded and decoded
 * strictly: exact keys, types, integer ranges, hex strings, counts and byte totals.
 *
 *   poll request      {"heartbeat":{"agent":"setls-agent/1","uptimeS":12,"cards":[{"uid":"…","state":"ready"}]}}
 *   script (200)      {"delay":0,"ramCommands":[{"ramCommandType":"seRamCommand","listOfCAPDU":["80CA…",…]}]}
 *   answers           {"listOfRAPDU":["…9000",…]}
 *   error (4xx/5xx)   {"error":{"code":"ERR_RELAY_…","message":"…"}}
 *
 * Hex is sent upper case and read in either case. A C-APDU is 4..65544 bytes, an R-APDU 2..65538; a
 * script holds 1..255 C-APDUs, an answer 0..255 R-APDUs, each list at most 512 KiB of bytes. (Whether
 * a C-APDU's length fields are consistent is the agent's check, with apdu/.) imports bytes/, relay/.
 */
import { fromHex, toHex } from '../bytes/index.js';
import { RelayError } from './errors.js';
import { RelayLimits } from './protocol.js';

export interface CardReport {
  /** The card UID (from the security domain's GET DATA DF50). */
  readonly uid: Uint8Array;
  /** ready: in X-Admin-SE-List; absent: known to the agent but not reachable now (removed). */
  readonly state: 'ready' | 'absent';
}

export interface Heartbeat {
  /** The agent's name and version, e.g. "setls-agent/1". */
  readonly agent: string;
  /** Seconds since the agent started. */
  readonly uptimeS: number;
  readonly cards: readonly CardReport[];
}

export interface ScriptBody {
  /** Seconds the agent waits before running the script (the hub sends 0). */
  readonly delayS: number;
  readonly capdus: readonly Uint8Array[];
}

export interface ErrorBody {
  readonly code: string;
  readonly message: string;
}

const HEX = /^[0-9A-Fa-f]*$/;
const AGENT = /^[\x20-\x7e]{1,64}$/;
const CODE = /^ERR_[A-Z0-9_]{1,60}$/;

function bad(why: string): RelayError {
  return new RelayError('ERR_RELAY_BODY', why);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Refuses keys other than `keys` and missing required ones. */
function exactKeys(o: Record<string, unknown>, keys: readonly string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw bad(`${where}: unknown member '${k.slice(0, 40)}'`);
  for (const k of keys) if (!(k in o)) throw bad(`${where}: member '${k}' missing`);
}

function intIn(v: unknown, min: number, max: number, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${where} must be an integer ${min}..${max}`);
  return v;
}

function parseJson(text: string, maxChars: number, what: string): unknown {
  if (typeof text !== 'string') throw bad(`${what}: not text`);
  if (text.length > maxChars) throw new RelayError('ERR_RELAY_TOO_LARGE', `${what}: ${text.length} characters, at most ${maxChars}`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw bad(`${what}: not JSON (${(e as Error).message.slice(0, 80)})`);
  }
}

/** One hex string of minBytes..maxBytes. */
function hexField(v: unknown, minBytes: number, maxBytes: number, where: string): Uint8Array {
  if (typeof v !== 'string') throw bad(`${where} must be a hex string`);
  if (v.length % 2 !== 0 || v.length < 2 * minBytes || v.length > 2 * maxBytes || !HEX.test(v)) {
    throw bad(`${where} must be ${minBytes}..${maxBytes} bytes of hex (got ${v.length} characters)`);
  }
  return fromHex(v);
}

/** A list of hex APDUs: count minCount..255, each minBytes..maxBytes, total ≤ 512 KiB. */
export function decodeHexList(v: unknown, minCount: number, minBytes: number, maxBytes: number, where: string): Uint8Array[] {
  if (!Array.isArray(v)) throw bad(`${where} must be an array`);
  if (v.length < minCount || v.length > RelayLimits.maxApdus) throw bad(`${where} holds ${minCount}..${RelayLimits.maxApdus} APDUs (got ${v.length})`);
  let total = 0;
  const out: Uint8Array[] = [];
  for (let i = 0; i < v.length; i++) {
    const s: unknown = v[i];
    if (typeof s === 'string') total += s.length / 2;
    if (total > RelayLimits.maxScriptBytes) throw new RelayError('ERR_RELAY_TOO_LARGE', `${where}: more than ${RelayLimits.maxScriptBytes} bytes of APDUs`);
    out.push(hexField(s, minBytes, maxBytes, `${where}[${i}]`));
  }
  return out;
}

export function encodeHexList(apdus: readonly Uint8Array[], minCount: number, minBytes: number, maxBytes: number, where: string): string[] {
  if (!Array.isArray(apdus) || apdus.length < minCount || apdus.length > RelayLimits.maxApdus) {
    throw new RelayError('ERR_RELAY_ARGUMENT', `${where} holds ${minCount}..${RelayLimits.maxApdus} APDUs`);
  }
  let total = 0;
  return apdus.map((a, i) => {
    if (!(a instanceof Uint8Array) || a.length < minBytes || a.length > maxBytes) throw new RelayError('ERR_RELAY_ARGUMENT', `${where}[${i}] must be ${minBytes}..${maxBytes} bytes`);
    total += a.length;
    if (total > RelayLimits.maxScriptBytes) throw new RelayError('ERR_RELAY_TOO_LARGE', `${where}: more than ${RelayLimits.maxScriptBytes} bytes of APDUs`);
    return toHex(a).toUpperCase();
  });
}

// ---- poll -------------------------------------------------------------------------------------

export function encodePollBody(h: Heartbeat): string {
  if (!AGENT.test(h.agent)) throw new RelayError('ERR_RELAY_ARGUMENT', 'heartbeat.agent is 1..64 printable ASCII characters');
  if (!Number.isInteger(h.uptimeS) || h.uptimeS < 0) throw new RelayError('ERR_RELAY_ARGUMENT', 'heartbeat.uptimeS is a non-negative integer');
  if (h.cards.length > RelayLimits.maxCards) throw new RelayError('ERR_RELAY_ARGUMENT', `at most ${RelayLimits.maxCards} cards`);
  const cards = h.cards.map((c) => {
    if (c.uid.length < RelayLimits.minUidBytes || c.uid.length > RelayLimits.maxUidBytes) throw new RelayError('ERR_RELAY_ARGUMENT', 'a card UID is 4..32 bytes');
    if (c.state !== 'ready' && c.state !== 'absent') throw new RelayError('ERR_RELAY_ARGUMENT', 'a card state is ready or absent');
    return { uid: toHex(c.uid).toUpperCase(), state: c.state };
  });
  return JSON.stringify({ heartbeat: { agent: h.agent, uptimeS: h.uptimeS, cards } });
}

export function decodePollBody(text: string): Heartbeat {
  const v = parseJson(text, RelayLimits.maxPollBody, 'poll body');
  if (!isObject(v)) throw bad('poll body must be an object');
  exactKeys(v, ['heartbeat'], 'poll body');
  const h = v.heartbeat;
  if (!isObject(h)) throw bad('heartbeat must be an object');
  exactKeys(h, ['agent', 'uptimeS', 'cards'], 'heartbeat');
  if (typeof h.agent !== 'string' || !AGENT.test(h.agent)) throw bad('heartbeat.agent must be 1..64 printable ASCII characters');
  const uptimeS = intIn(h.uptimeS, 0, Number.MAX_SAFE_INTEGER, 'heartbeat.uptimeS');
  if (!Array.isArray(h.cards) || h.cards.length > RelayLimits.maxCards) throw bad(`heartbeat.cards must be an array of at most ${RelayLimits.maxCards}`);
  const seen = new Set<string>();
  const cards = h.cards.map((c: unknown, i: number): CardReport => {
    const where = `heartbeat.cards[${i}]`;
    if (!isObject(c)) throw bad(`${where} must be an object`);
    exactKeys(c, ['uid', 'state'], where);
    const uid = hexField(c.uid, RelayLimits.minUidBytes, RelayLimits.maxUidBytes, `${where}.uid`);
    if (c.state !== 'ready' && c.state !== 'absent') throw bad(`${where}.state must be 'ready' or 'absent'`);
    const key = toHex(uid);
    if (seen.has(key)) throw bad(`${where}: card listed twice`);
    seen.add(key);
    return { uid, state: c.state };
  });
  return { agent: h.agent, uptimeS, cards };
}

// ---- script -----------------------------------------------------------------------------------

export function encodeScriptBody(s: ScriptBody): string {
  if (!Number.isInteger(s.delayS) || s.delayS < 0 || s.delayS > RelayLimits.maxDelayS) throw new RelayError('ERR_RELAY_ARGUMENT', `delay is 0..${RelayLimits.maxDelayS} s`);
  const list = encodeHexList(s.capdus, 1, 4, RelayLimits.maxCommandApdu, 'listOfCAPDU');
  return JSON.stringify({ delay: s.delayS, ramCommands: [{ ramCommandType: 'seRamCommand', listOfCAPDU: list }] });
}

export function decodeScriptBody(text: string): ScriptBody {
  const v = parseJson(text, RelayLimits.maxBody, 'script body');
  if (!isObject(v)) throw bad('script body must be an object');
  exactKeys(v, ['delay', 'ramCommands'], 'script body');
  const delayS = intIn(v.delay, 0, RelayLimits.maxDelayS, 'delay');
  if (!Array.isArray(v.ramCommands) || v.ramCommands.length !== 1) throw bad('ramCommands must hold exactly one command');
  const c: unknown = v.ramCommands[0];
  if (!isObject(c)) throw bad('ramCommands[0] must be an object');
  exactKeys(c, ['ramCommandType', 'listOfCAPDU'], 'ramCommands[0]');
  if (c.ramCommandType !== 'seRamCommand') throw bad("ramCommands[0].ramCommandType must be 'seRamCommand'");
  const capdus = decodeHexList(c.listOfCAPDU, 1, 4, RelayLimits.maxCommandApdu, 'listOfCAPDU');
  return { delayS, capdus };
}

// ---- answers ----------------------------------------------------------------------------------

export function encodeResultBody(rapdus: readonly Uint8Array[]): string {
  return JSON.stringify({ listOfRAPDU: encodeHexList(rapdus, 0, 2, RelayLimits.maxResponseApdu, 'listOfRAPDU') });
}

export function decodeResultBody(text: string): Uint8Array[] {
  const v = parseJson(text, RelayLimits.maxBody, 'answer body');
  if (!isObject(v)) throw bad('answer body must be an object');
  exactKeys(v, ['listOfRAPDU'], 'answer body');
  return decodeHexList(v.listOfRAPDU, 0, 2, RelayLimits.maxResponseApdu, 'listOfRAPDU');
}

// ---- errors -----------------------------------------------------------------------------------

export function encodeErrorBody(e: ErrorBody): string {
  return JSON.stringify({ error: { code: CODE.test(e.code) ? e.code : 'ERR_RELAY_INTERNAL', message: String(e.message).slice(0, 500) } });
}

/** The error of an error body, or undefined when the body is not one (never throws). */
export function decodeErrorBody(text: string): ErrorBody | undefined {
  try {
    const v = parseJson(text, 4096, 'error body');
    if (!isObject(v) || !isObject(v.error)) return undefined;
    const { code, message } = v.error;
    if (typeof code !== 'string' || !CODE.test(code) || typeof message !== 'string') return undefined;
    return { code, message: message.slice(0, 500) };
  } catch {
    return undefined;
  }
}
