/**
 * relay/protocol: the constants of `setls-remote-admin/1`, the protocol between the operator and the
 * device agent (docs/agent.md): header names, paths, script status values, limits. Modelled on GP
 * Amendment B (headers, Next-URI chaining, resume) and its admin-agent variant (SE list, targeted SE),
 * with GP SERAM's JSON (hex APDU lists). Pure data; imports protocol/isd (the ISD AID).
 */

/** The value of X-Admin-Protocol on every request and response. */
export const RELAY_PROTOCOL = 'setls-remote-admin/1';

/** Header names (lower case, as node:http gives them). */
export const RelayHeader = {
  protocol: 'x-admin-protocol',
  /** `//host/<host-id>`: who polls (request). */
  from: 'x-admin-from',
  /** `//se-id/CUD/<uid hex>;…`: the cards the agent reaches (poll request). */
  seList: 'x-admin-se-list',
  /** `/admin/v1/s/<token>`: where the agent posts the answers to this script (response). */
  nextUri: 'x-admin-next-uri',
  /** `//se-id/CUD/<uid hex>`: the card of this script (response) or of these answers (request). */
  targetedSe: 'x-admin-targeted-se',
  /** `//aid/<RID>/<PIX>`: the application the agent opens its channel to (response). */
  targetedApplication: 'x-admin-targeted-application',
  /** One of ScriptStatus (request to a Next-URI). */
  scriptStatus: 'x-admin-script-status',
  /** `true`: the agent restarted and resumes (poll, or the last Next-URI). */
  resume: 'x-admin-resume',
  retryAfter: 'retry-after',
  authorization: 'authorization',
  contentType: 'content-type',
} as const;

export const RelayPath = {
  /** Everything the relay endpoint answers is under this prefix. */
  prefix: '/admin/v1/',
  poll: '/admin/v1/poll',
  /** Next-URIs: this prefix and an opaque single-use token. */
  script: '/admin/v1/s/',
} as const;

export const RELAY_CONTENT_TYPE = 'application/json';

/**
 * X-Admin-Script-Status values. `ok`: the script ran (possibly stopped at an error status word: the
 * last R-APDU carries it). The others: nothing (or, for unavailable-se, only the R-APDUs listed) ran.
 */
export const ScriptStatus = {
  ok: 'ok',
  /** The targeted card is not reachable (not in the reader, removed mid-script, transport failure). */
  unavailableSe: 'unavailable-se',
  /** No free logical channel, or the card did not answer in time: try again later. */
  temporarilyUnavailableApplication: 'temporarily-unavailable-application',
  /** SELECT of the targeted application answered "not found" (6A82). */
  unknownApplication: 'unknown-application',
  /** A C-APDU the agent may not send (malformed, SELECT, MANAGE CHANNEL, a class it cannot move). */
  scriptFormatError: 'script-format-error',
  /** The card refused to select the targeted application (6982, 6985, 6999, 6283: locked). */
  securityError: 'security-error',
} as const;
export type ScriptStatus = (typeof ScriptStatus)[keyof typeof ScriptStatus];
export const SCRIPT_STATUSES: readonly ScriptStatus[] = Object.values(ScriptStatus);

export const RelayLimits = {
  /** Cards in X-Admin-SE-List and in a heartbeat. */
  maxCards: 64,
  /** Card UID (CUD) bytes. setls cards have 16. */
  minUidBytes: 4,
  maxUidBytes: 32,
  /** AID bytes (ISO 7816-5: RID 5 + PIX 0..11). */
  minAidBytes: 5,
  maxAidBytes: 16,
  /** X-Admin-From host id: 1..64 of [A-Za-z0-9._-]. */
  maxHostIdChars: 64,
  /** C-APDUs in one script (and R-APDUs in one answer). */
  maxApdus: 255,
  /** One C-APDU: header, extended Lc, 65535 data bytes, extended Le. */
  maxCommandApdu: 4 + 3 + 65535 + 2,
  /** One R-APDU (after GET RESPONSE reassembly): 65536 data bytes and SW1 SW2. */
  maxResponseApdu: 65536 + 2,
  /** Sum of the C-APDU bytes of one script, and of the R-APDU bytes of one answer. */
  maxScriptBytes: 512 * 1024,
  /** Largest JSON body of a script or an answer (hex doubles the bytes). */
  maxBody: 2 * 1024 * 1024,
  /** Largest poll body (the heartbeat). */
  maxPollBody: 16 * 1024,
  /** `delay` of a script, seconds. */
  maxDelayS: 300,
  /** Retry-After the agent honours, seconds. */
  maxRetryAfterS: 3600,
  /** The agent's name in the heartbeat. */
  maxAgentChars: 64,
  /** A bearer token. */
  maxTokenChars: 512,
} as const;

/** GlobalPlatform's issuer security domain, the application admin scripts target (protocol/isd.ts). */
export { ISD_AID } from '../protocol/isd.js';

/** Next-URI tokens: 32 random bytes, base64url without padding. */
export const NEXT_URI_TOKEN_CHARS = 43;
