/**
 * CountingTransport: wraps a CardTransport and counts every APDU exchange (one command APDU, one
 * response APDU) and the bytes each way, per phase of a TLS session and per command name. The
 * phase is set from outside (bench/setls-server.ts follows the tandem's `setls:session`
 * diagnostics events), so "APDUs per handshake" counts only what the handshake itself costs.
 * Counting is a couple of additions per APDU: it does not disturb the timings it sits in.
 */
import { commandName, type CardTransport } from '../src/transport/index.js';

/** handshake: PROCESS-EAP(START) … PROCESS-EAP (EAP-Success + session info); data: the record layer; teardown: RESET-STATE after close. */
export type Phase = 'setup' | 'handshake' | 'data' | 'teardown';
export const PHASES: readonly Phase[] = ['setup', 'handshake', 'data', 'teardown'];

export interface ApduTally {
  /** Command/response pairs. */
  exchanges: number;
  /** Bytes of command APDUs (header, Lc, data, Le). */
  commandBytes: number;
  /** Bytes of response APDUs (data ‖ SW1 SW2). */
  responseBytes: number;
}

export interface ApduCounts {
  readonly total: ApduTally;
  readonly byPhase: Record<Phase, ApduTally>;
  /** Per command name (e.g. PROCESS-EAP, GET-RESPONSE), all phases together. */
  readonly byCommand: Record<string, ApduTally>;
}

function zero(): ApduTally {
  return { exchanges: 0, commandBytes: 0, responseBytes: 0 };
}

function add(t: ApduTally, cmd: number, res: number): void {
  t.exchanges++;
  t.commandBytes += cmd;
  t.responseBytes += res;
}

export function emptyCounts(): ApduCounts {
  return { total: zero(), byPhase: { setup: zero(), handshake: zero(), data: zero(), teardown: zero() }, byCommand: {} };
}

/** `after − before`, for counts taken around one batch of connections. */
export function diffCounts(after: ApduCounts, before: ApduCounts): ApduCounts {
  const d = (a: ApduTally, b: ApduTally | undefined): ApduTally => ({
    exchanges: a.exchanges - (b?.exchanges ?? 0),
    commandBytes: a.commandBytes - (b?.commandBytes ?? 0),
    responseBytes: a.responseBytes - (b?.responseBytes ?? 0),
  });
  const byCommand: Record<string, ApduTally> = {};
  for (const [k, v] of Object.entries(after.byCommand)) {
    const x = d(v, before.byCommand[k]);
    if (x.exchanges > 0) byCommand[k] = x;
  }
  return {
    total: d(after.total, before.total),
    byPhase: {
      setup: d(after.byPhase.setup, before.byPhase.setup),
      handshake: d(after.byPhase.handshake, before.byPhase.handshake),
      data: d(after.byPhase.data, before.byPhase.data),
      teardown: d(after.byPhase.teardown, before.byPhase.teardown),
    },
    byCommand,
  };
}

/** `a + b`. */
export function addCounts(a: ApduCounts, b: ApduCounts): ApduCounts {
  const s = (x: ApduTally | undefined, y: ApduTally | undefined): ApduTally => ({
    exchanges: (x?.exchanges ?? 0) + (y?.exchanges ?? 0),
    commandBytes: (x?.commandBytes ?? 0) + (y?.commandBytes ?? 0),
    responseBytes: (x?.responseBytes ?? 0) + (y?.responseBytes ?? 0),
  });
  const byCommand: Record<string, ApduTally> = {};
  for (const k of new Set([...Object.keys(a.byCommand), ...Object.keys(b.byCommand)])) byCommand[k] = s(a.byCommand[k], b.byCommand[k]);
  const byPhase = {} as Record<Phase, ApduTally>;
  for (const p of PHASES) byPhase[p] = s(a.byPhase[p], b.byPhase[p]);
  return { total: s(a.total, b.total), byPhase, byCommand };
}

export function cloneCounts(c: ApduCounts): ApduCounts {
  return diffCounts(c, emptyCounts());
}

/**
 * The handshake's TLS flights as the card saw them: one "flight pair" is a PROCESS-EAP command chain
 * (the client's flight, data bytes summed over the segments) and the response it drew (the card's
 * flight, data bytes summed over GET RESPONSE blocks). Bytes include the EAP-TLS framing.
 */
export interface FlightTally {
  /** PROCESS-EAP command chains (flight pairs) in the handshake phase. */
  pairs: number;
  /** Command data bytes (client → card) over those chains. */
  cmdData: number;
  /** Response data bytes (card → client) over those chains. */
  respData: number;
  /** Σ over pairs of the fewest short-APDU exchanges: ceil(cmd/255) + ceil(resp/256) − 1 (≥ 1). */
  minShortExchanges: number;
}

export function emptyFlights(): FlightTally {
  return { pairs: 0, cmdData: 0, respData: 0, minShortExchanges: 0 };
}

export function diffFlights(a: FlightTally, b: FlightTally): FlightTally {
  return { pairs: a.pairs - b.pairs, cmdData: a.cmdData - b.cmdData, respData: a.respData - b.respData, minShortExchanges: a.minShortExchanges - b.minShortExchanges };
}

/** Data bytes (Lc) of a command APDU, short or extended. */
function commandData(apdu: Uint8Array): number {
  if (apdu.length <= 5) return 0;
  if (apdu[4] === 0 && apdu.length >= 7) return (apdu[5]! << 8) | apdu[6]!;
  return apdu[4]!;
}

export class CountingTransport implements CardTransport {
  phase: Phase = 'setup';
  private readonly counts = emptyCounts();
  private readonly flights = emptyFlights();
  private chain: { cmd: number; resp: number } | undefined;

  private trackFlight(apdu: Uint8Array, res: Uint8Array, phase: Phase): void {
    if (phase !== 'handshake' || apdu.length < 4) return;
    const ins = apdu[1]!;
    if (ins === 0x80) {
      this.chain ??= { cmd: 0, resp: 0 };
      this.chain.cmd += commandData(apdu);
      if ((apdu[2]! & 0x01) !== 0) return; // more segments follow (P1 bit 0, the card's chaining)
    } else if (ins !== 0xc0 || !this.chain) return;
    this.chain.resp += res.length - 2;
    if (res.length >= 2 && res[res.length - 2] === 0x61) return; // more response blocks
    const c = this.chain;
    this.chain = undefined;
    this.flights.pairs++;
    this.flights.cmdData += c.cmd;
    this.flights.respData += c.resp;
    this.flights.minShortExchanges += Math.max(1, Math.ceil(c.cmd / 255) + Math.ceil(c.resp / 256) - 1);
  }

  flightSnapshot(): FlightTally {
    return { ...this.flights };
  }

  constructor(private readonly inner: CardTransport) {}

  get extendedLength(): boolean {
    return this.inner.extendedLength;
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    const phase = this.phase; // the phase the command was sent in
    const res = await this.inner.transmit(apdu);
    let name = apdu.length >= 4 ? commandName(apdu[0]!, apdu[1]!, apdu[2]!, apdu[3]!) : 'short';
    // DECRYPT has the same header as a handshake PROCESS-EAP: tell them apart by the phase (the
    // setls host sends its DECRYPTs with END: the card wipes the session after the one that ends it)
    if ((name === 'PROCESS-EAP' || name === 'PROCESS-EAP(END)') && phase !== 'handshake') name = 'PROCESS-EAP-DECRYPT';
    if (apdu.length >= 4 && apdu[1] === 0x80 && apdu[2]! & 0x01) name += ' (More)';
    this.trackFlight(apdu, res, phase);
    add(this.counts.total, apdu.length, res.length);
    add(this.counts.byPhase[phase], apdu.length, res.length);
    add((this.counts.byCommand[name] ??= zero()), apdu.length, res.length);
    return res;
  }

  /** A copy of the counts so far. */
  snapshot(): ApduCounts {
    return cloneCounts(this.counts);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
