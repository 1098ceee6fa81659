/**
 * How the store suites get a store: a factory of fresh empty stores (SQLite file, or a throw-away
 * PostgreSQL database), and `storeRunner`, which runs a case on a fresh store and disposes of it.
 * imports src/operator/store (types).
 */
import type { OperatorStore } from '../../src/operator/store/types.js';

export interface StoreFactory {
  /** A fresh empty store and a way to dispose of it. */
  create(): Promise<{ store: OperatorStore; dispose: () => Promise<void>; reopen?: () => Promise<OperatorStore> }>;
}

/** Runs one case on a fresh store (with `reopen` where the back end can reopen it), disposed of after. */
export function storeRunner(factory: StoreFactory): (fn: (s: OperatorStore, reopen?: () => Promise<OperatorStore>) => Promise<void>) => Promise<void> {
  return async (fn) => {
    const { store, dispose, reopen } = await factory.create();
    try {
      await fn(store, reopen);
    } finally {
      await dispose();
    }
  };
}
