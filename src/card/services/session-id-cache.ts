/**
 * card/services/session-id-cache: the TLS 1.2 session-ID cache in card RAM (TlsServerConfig
 * .sessionCache), shared by every channel. Lost when the card process ends (never sealed).
 *
 * Secrets: the entries (TLS 1.2 master secrets): stored as given (the engine hands over fresh
 * copies), returned as copies (given to `onIssue` for wiping), wiped on eviction, deletion and
 * `clear()`. imports bytes/ and card/.
 */
import { toHex, wipe } from '../../bytes/index.js';
import { Limits } from '../constants.js';

/** At most `capacity` entries, least recently used evicted. */
export class SessionIdCache {
  private readonly entries = new Map<string, Uint8Array>();

  /**
   * `onIssue` receives every copy `get` hands out, so the card can wipe it once the APDU is done
   * (the engine decodes the entry at once and keeps its own copy of what it needs).
   */
  constructor(
    private readonly capacity: number = Limits.sessionCacheEntries,
    private readonly onIssue: (copy: Uint8Array) => void = () => {},
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(id: Uint8Array): Uint8Array | undefined {
    const k = toHex(id);
    const v = this.entries.get(k);
    if (!v) return undefined;
    this.entries.delete(k); // most recently used last
    this.entries.set(k, v);
    const copy = v.slice();
    this.onIssue(copy);
    return copy;
  }

  set(id: Uint8Array, state: Uint8Array): void {
    const k = toHex(id);
    wipe(this.entries.get(k));
    this.entries.delete(k);
    this.entries.set(k, state);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      wipe(this.entries.get(oldest));
      this.entries.delete(oldest);
    }
  }

  delete(id: Uint8Array): void {
    const k = toHex(id);
    wipe(this.entries.get(k));
    this.entries.delete(k);
  }

  clear(): void {
    for (const v of this.entries.values()) wipe(v);
    this.entries.clear();
  }
}
