/**
 * PeerUsage: the card time each source IP used recently, for the scheduler's order among waiting
 * peers (pool.ts dispatch: the peer that used the card least goes first). A channel's hold time is
 * charged to its peer when the channel is given back; the charge halves every `halfLifeMs`, so a
 * peer that stops using the card is back to the first class within a few half-lives.
 *
 * Waiting peers are compared by class, not by exact time: class 0 under `quantumMs`, then one class
 * per doubling (a handshake of ~10 ms, a session held ~0.5 s and one held ~2 s fall in different
 * classes; two ordinary clients do not), first come first served within a class. So a peer that held
 * a channel for seconds — a client trickling bytes until the hold limit cut it, a DTLS flood whose
 * handshakes stall until their deadline — waits behind the clients that only handshake, and cannot
 * take the next channel in turn with them over and over.
 *
 * Bounded: at most `maxPeers` entries; when full, the peer charged least recently is forgotten (its
 * charge has decayed the longest). imports nothing.
 */

interface Charge {
  ms: number;
  at: number;
}

export interface PeerUsageOptions {
  /** Half-life of a charge (default 5000 ms). */
  readonly halfLifeMs?: number;
  /** Card time below which a peer is in class 0 (default 50 ms). */
  readonly quantumMs?: number;
  /** Peers remembered (default 4096). */
  readonly maxPeers?: number;
}

export class PeerUsage {
  private readonly map = new Map<string, Charge>();
  private readonly halfLifeMs: number;
  private readonly quantumMs: number;
  private readonly maxPeers: number;

  constructor(o: PeerUsageOptions = {}) {
    this.halfLifeMs = o.halfLifeMs ?? 5000;
    this.quantumMs = o.quantumMs ?? 50;
    this.maxPeers = o.maxPeers ?? 4096;
    if (!(this.halfLifeMs > 0) || !(this.quantumMs > 0) || !(this.maxPeers >= 1)) throw new RangeError('PeerUsage: halfLifeMs, quantumMs and maxPeers must be positive');
  }

  /** Card ms `ip` used, decayed to `now`. */
  usage(ip: string, now: number): number {
    const c = this.map.get(ip);
    return c ? c.ms * 0.5 ** (Math.max(0, now - c.at) / this.halfLifeMs) : 0;
  }

  /** 0 under the quantum, then 1 + floor(log2(usage / quantum)). */
  classOf(ip: string, now: number): number {
    const u = this.usage(ip, now);
    return u < this.quantumMs ? 0 : 1 + Math.floor(Math.log2(u / this.quantumMs));
  }

  /** `ip` held a channel for `ms`. */
  charge(ip: string, ms: number, now: number): void {
    if (!(ms > 0)) return;
    const before = this.usage(ip, now);
    // re-inserted: the map's order is the order of the last charges, oldest first
    if (!this.map.delete(ip) && this.map.size >= this.maxPeers) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
    this.map.set(ip, { ms: before + ms, at: now });
  }

  /** Peers remembered (tests: bounded). */
  get size(): number {
    return this.map.size;
  }
}
