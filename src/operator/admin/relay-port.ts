/**
 * operator/admin/relay-port: what the executors need from the device-agent relay — one method,
 * `runScript`, which `RelayHub` (operator/relay) implements — and how its failures are sorted.
 * Written against this interface (not the hub's class) so executors are tested with any relay and
 * the hub stays a separate part. imports nothing but types.
 */

export interface RelayRunOptions {
  readonly timeoutMs: number;
  readonly keepOpen?: boolean;
  readonly continue?: boolean;
  readonly redeliver?: boolean;
}

export interface RelayScriptResult {
  readonly rapdus: Uint8Array[];
  /** X-Admin-Script-Status: ok, unavailable-se, temporarily-unavailable-application, unknown-application, security-error, script-format-error. */
  readonly status: string;
  readonly hostId: string;
  readonly deliveries: number;
}

/** The relay as the executors see it (RelayHub.runScript). */
export interface ScriptRelay {
  runScript(uid: Uint8Array, aid: Uint8Array, capdus: readonly Uint8Array[], opts: RelayRunOptions): Promise<RelayScriptResult>;
}

/** The relay's rejection codes (src/relay/errors.ts), by name. */
export const RelayCode = {
  timeout: 'ERR_RELAY_TIMEOUT',
  interrupted: 'ERR_RELAY_INTERRUPTED',
  sessionLost: 'ERR_RELAY_SESSION_LOST',
  queueFull: 'ERR_RELAY_QUEUE_FULL',
  closed: 'ERR_RELAY_CLOSED',
  argument: 'ERR_RELAY_ARGUMENT',
} as const;

/** The ERR_RELAY_… code of a rejection, if it is one. */
export function relayCodeOf(e: unknown): string | undefined {
  const c = (e as { code?: unknown })?.code;
  return typeof c === 'string' && c.startsWith('ERR_RELAY_') ? c : undefined;
}
