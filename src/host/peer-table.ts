/**
 * PeerTable: what each source IP holds of a card scheduler right now — connections still sending
 * their ClientHello (`pending`), complete ClientHellos or DTLS associations waiting for a card
 * channel (`ready`), and channels it holds (`active`). Entries disappear when all three are 0, so
 * the table is bounded by the connections themselves. The per-peer limits (docs/architecture.md,
 * "Sessions under pressure") are read from here. imports nothing.
 */

export interface PeerCounts {
  pending: number;
  ready: number;
  active: number;
}

export type PeerField = keyof PeerCounts;

/** The key of a peer: its IP address (IPv4-mapped IPv6 folded to IPv4); '?' when unknown (a socket already closed). */
export function peerKey(address: string | undefined): string {
  if (!address) return '?';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export class PeerTable {
  private readonly map = new Map<string, PeerCounts>();

  get(ip: string): Readonly<PeerCounts> {
    return this.map.get(ip) ?? { pending: 0, ready: 0, active: 0 };
  }

  /** Connections of `ip` waiting (still sending the ClientHello, or waiting for a channel). */
  waiting(ip: string): number {
    const c = this.map.get(ip);
    return c ? c.pending + c.ready : 0;
  }

  active(ip: string): number {
    return this.map.get(ip)?.active ?? 0;
  }

  add(ip: string, field: PeerField, n = 1): void {
    let c = this.map.get(ip);
    if (!c) {
      c = { pending: 0, ready: 0, active: 0 };
      this.map.set(ip, c);
    }
    c[field] = Math.max(0, c[field] + n);
    if (c.pending === 0 && c.ready === 0 && c.active === 0) this.map.delete(ip);
  }

  /** The peers with connections waiting for a channel (`ready` > 0). */
  *readyPeers(): IterableIterator<string> {
    for (const [ip, c] of this.map) if (c.ready > 0) yield ip;
  }

  /** Peers known (tests: the table empties when the connections are gone). */
  get size(): number {
    return this.map.size;
  }
}
