/**
 * operator/jobs/kinds: the card job kinds the API creates, who may create each (role), in which card
 * states, with which parameters, attempts and deadline. imports store/types, errors, pki/x509.
 *
 * Every kind runs (once wired: executors are registered per kind, see jobs/runner.ts) as an SCP03
 * admin script at security level 33 relayed by the card's device agent.
 */
import { OpError, OpErrorCode } from '../errors.js';
import type { CardLifecycle, JsonObject, Role } from '../store/types.js';
import { certificateDer, fromPemAll } from '../pki/x509.js';

export const JobKind = {
  enrol: 'enrol',
  lock: 'lock',
  unlock: 'unlock',
  terminate: 'terminate',
  rekey: 'rekey',
  unblockPin: 'unblock-pin',
  readAudit: 'read-audit',
  rotateAdminKeys: 'rotate-admin-keys',
  pushClientCas: 'push-client-cas',
  pushDenyList: 'push-deny-list',
} as const;
export type JobKind = (typeof JobKind)[keyof typeof JobKind];
export const JOB_KINDS: readonly JobKind[] = Object.values(JobKind);

export function isJobKind(v: string): v is JobKind {
  return (JOB_KINDS as readonly string[]).includes(v);
}

export interface JobSpec {
  /** Lowest role that may create it. */
  readonly role: Role;
  /** Card states in which it may be created. */
  readonly states: readonly CardLifecycle[];
  readonly maxAttempts: number;
  /** Deadline after creation (the job times out if not finished). */
  readonly deadlineMs: number;
  /** Validates and normalises the request body into the job's params. */
  readonly params: (body: JsonObject) => JsonObject;
}

const HOUR = 3600 * 1000;
const OWNED: readonly CardLifecycle[] = ['enrolled', 'active', 'locked'];

function bad(message: string): never {
  throw new OpError(OpErrorCode.badRequest, message);
}

function only(body: JsonObject, allowed: readonly string[]): void {
  for (const k of Object.keys(body)) if (!allowed.includes(k)) bad(`unknown parameter '${k}' (allowed: ${allowed.join(', ') || 'none'})`);
}

function optStrings(body: JsonObject, key: string, check: (s: string) => boolean, what: string): string[] | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > 32 || !v.every((x) => typeof x === 'string' && check(x))) bad(`${key} must be a list of at most 32 ${what}`);
  return v as string[];
}

function optInt(body: JsonObject, key: string, min: number, max: number): number | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(`${key} must be an integer ${min}..${max}`);
  return v;
}

const DNS_RE = /^(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IP_RE = /^(\d{1,3}(\.\d{1,3}){3}|[0-9A-Fa-f:]+)$/;

function withoutUndefined(o: Record<string, unknown>): JsonObject {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as JsonObject;
}

export const JOB_SPECS: Readonly<Record<JobKind, JobSpec>> = {
  enrol: {
    role: 'operator',
    states: ['manifest', 'enrolled'],
    maxAttempts: 5,
    deadlineMs: 24 * HOUR,
    params: (b) => {
      only(b, ['dnsNames', 'ipAddresses', 'days']);
      return withoutUndefined({
        dnsNames: optStrings(b, 'dnsNames', (s) => DNS_RE.test(s), 'DNS names'),
        ipAddresses: optStrings(b, 'ipAddresses', (s) => IP_RE.test(s), 'IP addresses'),
        days: optInt(b, 'days', 1, 825),
      });
    },
  },
  lock: { role: 'operator', states: OWNED, maxAttempts: 10, deadlineMs: 24 * HOUR, params: reasonOnly },
  unlock: { role: 'operator', states: OWNED, maxAttempts: 10, deadlineMs: 24 * HOUR, params: reasonOnly },
  terminate: { role: 'admin', states: ['manifest', 'enrolled', 'active', 'locked'], maxAttempts: 10, deadlineMs: 7 * 24 * HOUR, params: reasonOnly },
  rekey: {
    role: 'operator',
    states: OWNED,
    maxAttempts: 5,
    deadlineMs: 24 * HOUR,
    params: (b) => {
      only(b, ['graceSeconds', 'days']);
      return withoutUndefined({ graceSeconds: optInt(b, 'graceSeconds', 0, 30 * 86400), days: optInt(b, 'days', 1, 825) });
    },
  },
  'unblock-pin': {
    role: 'operator',
    states: OWNED,
    maxAttempts: 5,
    deadlineMs: 24 * HOUR,
    params: (b) => {
      only(b, ['pin']);
      const pin = b['pin'] ?? 'user';
      if (pin !== 'user' && pin !== 'operator') bad(`pin must be 'user' or 'operator'`);
      return { pin };
    },
  },
  'read-audit': {
    role: 'viewer',
    states: OWNED,
    maxAttempts: 5,
    deadlineMs: 24 * HOUR,
    params: (b) => {
      only(b, ['fromSeq']);
      return withoutUndefined({ fromSeq: optInt(b, 'fromSeq', 0, 2 ** 31) });
    },
  },
  'rotate-admin-keys': { role: 'admin', states: OWNED, maxAttempts: 5, deadlineMs: 24 * HOUR, params: reasonOnly },
  'push-client-cas': {
    role: 'operator',
    states: OWNED,
    maxAttempts: 5,
    deadlineMs: 24 * HOUR,
    params: (b) => {
      only(b, ['certificates']);
      const v = b['certificates'];
      if (!Array.isArray(v) || v.length > 16 || !v.every((x) => typeof x === 'string')) bad('certificates must be a list of at most 16 PEM certificates');
      const pems: string[] = [];
      for (const text of v as string[]) {
        const ders = text.includes('-----BEGIN') ? fromPemAll(text) : [];
        try {
          if (ders.length !== 1) certificateDer(text);
        } catch (e) {
          bad(`certificates: ${(e as Error).message}`);
        }
        pems.push(text.trim());
      }
      return { certificates: pems };
    },
  },
  'push-deny-list': {
    role: 'operator',
    states: OWNED,
    maxAttempts: 5,
    deadlineMs: 24 * HOUR,
    params: (b) => {
      only(b, ['serials']);
      const v = b['serials'];
      if (!Array.isArray(v) || v.length > 1024 || !v.every((x) => typeof x === 'string' && /^([0-9a-fA-F]{2}){1,20}$/.test(x.replace(/:/g, '')))) {
        bad('serials must be a list of at most 1024 certificate serials (hex, 1–20 bytes)');
      }
      return { serials: (v as string[]).map((s) => s.replace(/:/g, '').toLowerCase()) };
    },
  },
};

function reasonOnly(b: JsonObject): JsonObject {
  only(b, ['reason']);
  const r = b['reason'];
  if (r !== undefined && (typeof r !== 'string' || r.length > 200)) bad('reason must be a string of at most 200 characters');
  return withoutUndefined({ reason: r });
}
