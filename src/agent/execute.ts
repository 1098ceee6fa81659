/**
 * agent/execute: runs one admin script on the agent's logical channel, by the agent rule
 * (docs/agent.md): the C-APDUs in order, each moved to the channel by its CLA channel bits and no
 * other byte changed; 61xx answered with GET RESPONSE by the agent and the R-APDU returned whole
 * (data ‖ final SW); the script stops after the first status word other than 9000, 61xx, 62xx, 63xx.
 *
 * `checkScript` refuses, before anything is sent, what the agent may not relay: a malformed C-APDU,
 * an extended one the transport cannot carry, a class it cannot move, MANAGE CHANNEL (the channels
 * are the agent's) and SELECT (the agent selects the targeted application itself; Amendment B).
 * imports apdu/, host/ (CardClient) and agent/.
 */
import { parseCommand } from '../apdu/index.js';
import type { CardClient } from '../host/card-client.js';
import { isMovableCla, isoCla, moveCla } from './cla.js';

/** Why a script cannot be relayed, or undefined when it can. */
export function checkScript(capdus: readonly Uint8Array[], extendedLength: boolean): string | undefined {
  for (let i = 0; i < capdus.length; i++) {
    const c = capdus[i]!;
    let cmd;
    try {
      cmd = parseCommand(c);
    } catch {
      return `C-APDU ${i}: its lengths are inconsistent`;
    }
    if (cmd.extended && !extendedLength) return `C-APDU ${i}: extended length, which this card's transport does not carry`;
    if (!isMovableCla(c[0]!)) return `C-APDU ${i}: class ${c[0]!.toString(16).padStart(2, '0')} is not a basic-channel class the agent can move`;
    const interindustry = (c[0]! & 0x80) === 0;
    if (interindustry && c[1] === 0x70) return `C-APDU ${i}: MANAGE CHANNEL is the agent's`;
    if (interindustry && c[1] === 0xa4) return `C-APDU ${i}: SELECT is the agent's (the script targets its application)`;
  }
  return undefined;
}

/** SWs after which the script goes on: 9000, and the warnings 62xx / 63xx (61xx is followed first). */
export function continuesAfter(sw: number): boolean {
  const sw1 = sw >> 8;
  return sw === 0x9000 || sw1 === 0x62 || sw1 === 0x63;
}

export interface ExecuteOptions {
  /** Largest data of one reassembled R-APDU (default 65536). */
  readonly maxResponseData?: number;
  /** Largest sum of R-APDU bytes (default 512 KiB): the script stops before exceeding it. */
  readonly maxTotal?: number;
  /** Checked before each C-APDU: true stops the script (the agent is stopping). */
  readonly stopped?: () => boolean;
}

export interface ExecuteResult {
  /** One R-APDU per C-APDU that ran. */
  readonly rapdus: Uint8Array[];
  /** Status word of each R-APDU. */
  readonly sws: number[];
  /** Bytes sent (the script's C-APDUs and the agent's GET RESPONSEs) and received. */
  readonly bytesOut: number;
  readonly bytesIn: number;
  /** Why the script ended early: an error SW, the size bound, or a stop. */
  readonly stop?: 'sw' | 'size' | 'stopped';
}

const swOf = (r: Uint8Array): number => (r[r.length - 2]! << 8) | r[r.length - 1]!;

/**
 * Runs `capdus` (already accepted by checkScript) on `client`'s channel. A transport failure (card
 * removed, transport closed, timeout) is thrown with the R-APDUs that ran so far in `partial`.
 */
export async function executeScript(client: CardClient, capdus: readonly Uint8Array[], opts: ExecuteOptions = {}): Promise<ExecuteResult> {
  const maxData = opts.maxResponseData ?? 65536;
  const maxTotal = opts.maxTotal ?? 512 * 1024;
  const channel = client.channel;
  const rapdus: Uint8Array[] = [];
  const sws: number[] = [];
  let bytesOut = 0;
  let bytesIn = 0;
  let total = 0;
  for (const c of capdus) {
    if (opts.stopped?.()) return { rapdus, sws, bytesOut, bytesIn, stop: 'stopped' };
    const moved = c.slice();
    moved[0] = moveCla(c[0]!, channel);
    let rapdu: Uint8Array | undefined;
    try {
      rapdu = await client.runChain(async (transmit) => {
        const send = async (apdu: Uint8Array): Promise<Uint8Array> => {
          const r = await transmit(apdu);
          bytesOut += apdu.length;
          bytesIn += r.length;
          if (r.length < 2) throw Object.assign(new Error('a response APDU without status word'), { code: 'ERR_APDU_RESPONSE' });
          return r;
        };
        let r = await send(moved);
        if (r[r.length - 2] !== 0x61) return r;
        // 61xx: the agent fetches the rest itself and returns one R-APDU (data ‖ final SW).
        const parts: Uint8Array[] = [];
        let size = 0;
        while (r[r.length - 2] === 0x61) {
          parts.push(r.subarray(0, r.length - 2));
          size += r.length - 2;
          if (size > maxData) return undefined;
          r = await send(Uint8Array.of(isoCla(channel), 0xc0, 0x00, 0x00, r[r.length - 1]!));
        }
        parts.push(r);
        size += r.length;
        if (size - 2 > maxData) return undefined;
        const out = new Uint8Array(size);
        let o = 0;
        for (const p of parts) {
          out.set(p, o);
          o += p.length;
        }
        return out;
      });
    } catch (e) {
      throw Object.assign(e as Error, { partial: { rapdus, sws, bytesOut, bytesIn } });
    } finally {
      moved.fill(0);
    }
    // A response larger than any ISO response (bounded memory): the script stops before it.
    if (rapdu === undefined) return { rapdus, sws, bytesOut, bytesIn, stop: 'size' };
    if (total + rapdu.length > maxTotal) return { rapdus, sws, bytesOut, bytesIn, stop: 'size' };
    total += rapdu.length;
    const sw = swOf(rapdu);
    rapdus.push(rapdu);
    sws.push(sw);
    if (!continuesAfter(sw)) return { rapdus, sws, bytesOut, bytesIn, stop: 'sw' };
  }
  return { rapdus, sws, bytesOut, bytesIn };
}
