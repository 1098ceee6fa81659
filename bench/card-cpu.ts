/**
 * Card-only CPU benchmark: full TLS 1.3 handshakes (card defaults: x25519, ECDSA P-256 identity,
 * TLS_AES_128_GCM_SHA256, one session ticket) between Node's TLS client and an emulated card, over
 * an in-memory pipe (test/card/tls-host.ts). Only the CPU spent inside `card.process` is counted
 * (process.cpuUsage() around each call), so the client, the pipe and the EAP/APDU shuttle do not
 * count.
 *
 *   node --import tsx bench/card-cpu.ts [--n 1000] [--warmup 1000] [--batches 3] [--resumed] [--json]
 *
 * --resumed: also resumed TLS 1.3 handshakes (psk_dhe_ke, the ticket of the previous connection, as
 * Node's client offers it), batches interleaved with the full ones; prints resumed / full.
 *
 * Prints card CPU µs per handshake (median of the batches' means), the median single handshake,
 * the sum over commands of the median wall time per call (robust to GC pauses and CPU steal) and a
 * breakdown by command (INS, and PROCESS-EAP by position in the handshake). The machine may be
 * noisy: run it a few times and compare medians.
 */
import { parseArgs } from 'node:util';
import type { EmulatedCard } from '../src/card/index.js';
import { SELECT, TestCa, USER_PIN, newCard, personalise, send, verify } from '../test/card/helpers.js';
import { ClientPipe, connectClient, driveHandshake } from '../test/card/tls-host.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '1000' },
    warmup: { type: 'string', default: '1000' },
    batches: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    resumed: { type: 'boolean', default: false },
  },
  strict: true,
});
const N = Number(values.n);
const WARMUP = Number(values.warmup);
const BATCHES = Number(values.batches);

interface Tally {
  us: number;
  calls: number;
}

/** Card CPU accounting: total, and by label (INS; PROCESS-EAP by its index in the handshake). */
class Meter {
  total = 0;
  readonly byLabel = new Map<string, Tally>();
  /** Wall time of each call by label, µs (a sync call: wall ≈ this thread's CPU, GC helpers excluded). */
  readonly wall = new Map<string, number[]>();
  /** Index of the PROCESS-EAP call within the current handshake. */
  eapIndex = 0;

  reset(): void {
    this.total = 0;
    this.byLabel.clear();
    this.wall.clear();
  }

  addWall(label: string, us: number): void {
    const w = this.wall.get(label);
    if (w) w.push(us);
    else this.wall.set(label, [us]);
  }

  add(label: string, us: number): void {
    this.total += us;
    const t = this.byLabel.get(label);
    if (t) {
      t.us += us;
      t.calls++;
    } else this.byLabel.set(label, { us, calls: 1 });
  }
}

function labelOf(apdu: Uint8Array, meter: Meter): string {
  const ins = apdu[1]!;
  if (ins === 0x80) return `PROCESS-EAP #${meter.eapIndex++}`;
  if (ins === 0xc0) return 'GET RESPONSE';
  return `INS ${ins.toString(16).padStart(2, '0')}`;
}

function instrument(card: EmulatedCard, meter: Meter): void {
  const orig = card.process.bind(card);
  card.process = (apdu: Uint8Array): Uint8Array => {
    const label = labelOf(apdu, meter);
    const t0 = process.cpuUsage();
    const w0 = process.hrtime.bigint();
    const out = orig(apdu);
    const w1 = process.hrtime.bigint();
    const t1 = process.cpuUsage(t0);
    meter.add(label, t1.user + t1.system);
    meter.addWall(label, Number(w1 - w0) / 1000);
    return out;
  };
}

/** The latest ticket the client got (resumed mode offers it). */
let lastSession: Buffer | undefined;

async function handshake(card: EmulatedCard, caPem: string, meter: Meter, resume = false): Promise<number> {
  meter.eapIndex = 0;
  const before = meter.total;
  const pipe = new ClientPipe();
  const client = connectClient(pipe, caPem, resume && lastSession ? { session: lastSession } : {});
  const ticket = new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 2000);
    client.once('session', (s: Buffer) => {
      lastSession = s;
      clearTimeout(t);
      resolve();
    });
  });
  let failed: Error | undefined;
  client.on('error', (e: Error) => {
    failed ??= e;
  });
  const connected = new Promise<void>((resolve, reject) => {
    client.once('secureConnect', () => resolve());
    client.once('error', reject);
  });
  const hs = await driveHandshake(card, pipe, { start: true, info: true, extended: true });
  if (hs.outcome !== 'success') throw new Error(`handshake failed on the card: ${card.lastError?.message ?? '?'}`);
  await connected;
  if (resume && !client.isSessionReused()) throw new Error('offered a ticket, the handshake was a full one');
  if (!resume && client.isSessionReused()) throw new Error('a full handshake was resumed');
  await ticket;
  client.destroy();
  if (failed) throw failed;
  return meter.total - before;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const ca = await TestCa.create();
  const { card, cleanup } = newCard();
  try {
    await personalise(card, ca);
    if (send(card, SELECT).sw !== 0x9000) throw new Error('SELECT failed');
    if (send(card, verify(USER_PIN)).sw !== 0x9000) throw new Error('VERIFY failed');
    const meter = new Meter();
    instrument(card, meter);
    const caPem = ca.pem;
    const modes: ('full' | 'resumed')[] = values.resumed ? ['full', 'resumed'] : ['full'];
    for (let i = 0; i < WARMUP; i++) for (const m of modes) await handshake(card, caPem, meter, m === 'resumed');
    interface Acc {
      perHs: number[];
      /** Median over single handshakes within each batch (robust to GC pauses and CPU steal). */
      medHs: number[];
      /** Per batch: the sum over commands of the median wall time of each call (robust to noise). */
      wallSum: number[];
      labels: Map<string, number[]>;
    }
    const acc = new Map(modes.map((m) => [m, { perHs: [], medHs: [], wallSum: [], labels: new Map() } as Acc]));
    for (let b = 0; b < BATCHES; b++) {
      for (const mode of modes) {
        const a = acc.get(mode)!;
        meter.reset();
        const one: number[] = [];
        for (let i = 0; i < N; i++) one.push(await handshake(card, caPem, meter, mode === 'resumed'));
        a.perHs.push(meter.total / N);
        a.medHs.push(median(one));
        let ws = 0;
        for (const w of meter.wall.values()) ws += (median(w) * w.length) / N;
        a.wallSum.push(ws);
        for (const [k, t] of meter.byLabel) {
          const arr = a.labels.get(k) ?? [];
          arr.push(t.us / N);
          a.labels.set(k, arr);
        }
        if (!values.json) console.error(`batch ${b + 1}/${BATCHES} ${mode}: mean ${(meter.total / N).toFixed(1)} µs/handshake, median ${median(one).toFixed(1)}, wall-median sum ${ws.toFixed(1)}`);
      }
    }
    const results = modes.map((mode) => {
      const a = acc.get(mode)!;
      return {
        mode,
        n: N,
        batches: a.perHs.map((x) => Math.round(x * 10) / 10),
        medianUsPerHandshake: Math.round(median(a.perHs) * 10) / 10,
        /** Median of the batches' per-handshake medians. */
        typicalUsPerHandshake: Math.round(median(a.medHs) * 10) / 10,
        /** Median over batches of Σ_commands median wall µs per call × calls per handshake. */
        wallMedianUsPerHandshake: Math.round(median(a.wallSum) * 10) / 10,
        byCommand: Object.fromEntries([...a.labels].map(([k, v]) => [k, Math.round(median(v) * 10) / 10])),
      };
    });
    const full = results[0]!;
    const resumed = results[1];
    const ratio = resumed ? Math.round((resumed.typicalUsPerHandshake / full.typicalUsPerHandshake) * 1000) / 1000 : undefined;
    if (values.json) console.log(JSON.stringify(resumed ? { ...full, resumed, resumedVsFull: ratio } : full));
    else {
      for (const r of results) {
        console.log(`card CPU per ${r.mode} TLS 1.3 handshake: ${r.medianUsPerHandshake} µs (median of ${BATCHES} batch means × ${N}; batches ${r.batches.join(', ')}); single-handshake median ${r.typicalUsPerHandshake} µs; wall-median sum ${r.wallMedianUsPerHandshake} µs`);
        for (const [k, v] of Object.entries(r.byCommand)) console.log(`  ${k.padEnd(16)} ${v.toFixed(1).padStart(8)} µs/handshake`);
      }
      if (ratio !== undefined) console.log(`resumed / full (single-handshake medians): ${ratio.toFixed(3)}×`);
    }
  } finally {
    card.close();
    cleanup();
  }
}

await main();
