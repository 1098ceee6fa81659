/**
 * TracingTransport: wraps a transport and reports every APDU both ways as annotated hex to a sink
 * (the CLI's `--trace`, or an array in tests):
 *
 *   >> A0 80 00 00 F0 02 07 00 F0 0D 80 …  PROCESS-EAP (More) [245 bytes]
 *   << 01 08 00 06 0D 00 90 00  9000 OK
 *
 * PIN/PUK bytes and session keys are redacted unless `redactSecrets: false`.
 * imports apdu/ (describeSw), bytes/, protocol/ (command names, setls status words) and transport/.
 */
import { describeSw, swHex } from '../apdu/index.js';
import { toHex } from '../bytes/index.js';
import { Ins, P1_MORE, SETLS_SW_NAMES, commandName, hasSecretData, hasSecretResponse, isChainable } from '../protocol/index.js';
import type { CardTransport } from './card-transport.js';

export type TraceSink = (line: string) => void;

export interface TraceOptions {
  /** Bytes of each APDU printed before eliding with `…`. Default 48; 0 = print all. */
  readonly maxBytes?: number;
  /** Hide PIN/PUK data and session-key responses. Default true. */
  readonly redactSecrets?: boolean;
}

function hexSpaced(b: Uint8Array, max: number): string {
  const shown = max > 0 && b.length > max ? b.subarray(0, max) : b;
  const s = toHex(shown, ' ').toUpperCase();
  return shown.length < b.length ? `${s} …` : s;
}

/** One annotated line for a command APDU. */
export function formatCommand(apdu: Uint8Array, opts: TraceOptions = {}): string {
  const max = opts.maxBytes ?? 48;
  const redact = opts.redactSecrets !== false;
  if (apdu.length < 4) return `>> ${hexSpaced(apdu, max)}  (short APDU)`;
  const [cla, ins, p1, p2] = [apdu[0]!, apdu[1]!, apdu[2]!, apdu[3]!];
  let name = commandName(cla, ins, p1, p2);
  if (isChainable(ins) && p1 & P1_MORE) name += ' (More)';
  // keep the header and the Lc field (1 byte short, 3 bytes extended), hide the data
  const lcEnd = apdu.length > 7 && apdu[4] === 0 ? 7 : 5;
  const shown = redact && hasSecretData(ins) && apdu.length > lcEnd ? apdu.subarray(0, lcEnd) : apdu;
  const hex = hexSpaced(shown, max) + (shown !== apdu ? ' ** ** (redacted)' : '');
  return `>> ${hex}  ${name} [${apdu.length} bytes]`;
}

/** One annotated line for a response APDU; `ins` (of the command) enables redaction. */
export function formatResponse(res: Uint8Array, opts: TraceOptions & { ins?: number } = {}): string {
  const max = opts.maxBytes ?? 48;
  if (res.length < 2) return `<< ${hexSpaced(res, max)}  (no status word)`;
  const sw = (res[res.length - 2]! << 8) | res[res.length - 1]!;
  const data = res.subarray(0, res.length - 2);
  const redact = opts.redactSecrets !== false && opts.ins !== undefined && hasSecretResponse(opts.ins) && data.length > 0;
  const body = redact ? `** (${data.length} secret bytes redacted) ${swHex(sw).replace(/(..)(..)/, '$1 $2')}` : hexSpaced(data, max);
  const tail = redact ? '' : (data.length ? ' ' : '') + swHex(sw).replace(/(..)(..)/, '$1 $2');
  return `<< ${body}${tail}  ${swHex(sw)} ${describeSw(sw, SETLS_SW_NAMES)}${data.length ? ` [${data.length} bytes]` : ''}`;
}

export class TracingTransport implements CardTransport {
  /** INS of the last command other than GET RESPONSE / FETCH. */
  private lastIns: number | undefined;

  constructor(
    private readonly inner: CardTransport,
    private readonly sink: TraceSink,
    private readonly opts: TraceOptions = {},
  ) {
    if (typeof sink !== 'function') throw new TypeError('TracingTransport needs a sink function');
  }

  get extendedLength(): boolean {
    return this.inner.extendedLength;
  }

  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    let ins = apdu.length >= 2 ? apdu[1] : undefined;
    // GET RESPONSE / FETCH continue the previous command's response: redact them like it.
    if ((ins === Ins.getResponse || ins === Ins.fetch) && this.lastIns !== undefined) ins = this.lastIns;
    else this.lastIns = ins;
    this.emit(formatCommand(apdu, this.opts));
    try {
      const res = await this.inner.transmit(apdu);
      this.emit(formatResponse(res, { ...this.opts, ...(ins !== undefined ? { ins } : {}) }));
      return res;
    } catch (e) {
      this.emit(`<< !! ${(e as Error).message}`);
      throw e;
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  withTransaction<T>(fn: () => Promise<T>): Promise<T> {
    return this.inner.withTransaction ? this.inner.withTransaction(fn) : fn();
  }

  private emit(line: string): void {
    try {
      this.sink(line);
    } catch {
      // a broken sink must never break the card exchange
    }
  }
}
