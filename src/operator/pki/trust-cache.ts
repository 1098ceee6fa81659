/**
 * operator/pki/trust-cache: the trusted manufacturer CAs (DER) as the enrolment reads them — from the
 * store at most once per `ttlMs` instead of once per enrolment (one statement of each enrolment on
 * PostgreSQL, issue #17). imports nothing.
 *
 * Semantics: a CA trusted through this process (`invalidate()`, called by
 * Operator.trustManufacturer) counts at the next enrolment; a change made elsewhere (the CLI's
 * `operator trust` in another process, another operator node, a row deleted by hand) counts at the
 * latest `ttlMs` after it was committed. A load started before an `invalidate()` is never kept.
 * Concurrent callers share one load. ttlMs 0: read at every call (the former behaviour).
 * The chain check itself (pki/chain.ts) takes the list it is given at each call and caches no trust.
 */

export const DEFAULT_TRUST_TTL_MS = 1000;

export class TrustedCasCache {
  private value: readonly Uint8Array[] | null = null;
  private loadedAt = 0;
  private loading: Promise<readonly Uint8Array[]> | null = null;
  private generation = 0;
  /** Loads from the store actually run (tests, metrics). */
  loads = 0;

  constructor(
    private readonly load: () => Promise<readonly Uint8Array[]>,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {
    if (!(ttlMs >= 0)) throw new RangeError('ttlMs must be ≥ 0');
  }

  /** The trusted CAs: the cached list while younger than ttlMs (by `now`), else a fresh load. */
  get(): Promise<readonly Uint8Array[]> {
    const t = this.now();
    if (this.value && t >= this.loadedAt && t - this.loadedAt < this.ttlMs) return Promise.resolve(this.value);
    if (this.loading) return this.loading;
    const gen = this.generation;
    this.loads++;
    const p = this.load().then(
      (v) => {
        if (gen === this.generation) {
          this.value = v;
          this.loadedAt = t;
        }
        if (this.loading === p) this.loading = null;
        return v;
      },
      (e: unknown) => {
        if (this.loading === p) this.loading = null;
        throw e;
      },
    );
    this.loading = p;
    return p;
  }

  /** The list changed: the next `get` reads the store (a load running now is not kept). */
  invalidate(): void {
    this.generation++;
    this.value = null;
    this.loading = null;
  }
}
