/**
 * card/applets/isd-platform: the security domain's `IsdPlatform` (card/applets/isd/platform.ts)
 * implemented on the card services — the one place that joins the ISD to the rest of the card.
 *
 *  - The ISD record is the state's `isd` field (one more TLV of the sealed state); `transaction`
 *    is one store transaction: the record, the identity keys, the PINs and the clock floor change
 *    in one atomic write, or not at all.
 *  - Slot N is the card identity labelled `slot<N>` (services/security-domain.ts `slotLabel`):
 *    GenerateIdentityKey makes it (a key generated in the card, no chain: it serves nothing),
 *    ActivateIdentity installs its chain (it serves), retire removes the chain, DeleteKey removes
 *    the identity, termination removes every identity and PSK.
 *  - A change that decides who may connect — an identity's chain or policy, the lifecycle, an applet
 *    or identity lock, the client CAs, the deny-list — drops the session ticket key in the same write
 *    and empties the TLS 1.2 session-ID cache once committed, so no session made before it resumes
 *    around it. Sessions already running are not cut (locks: the card OS refuses their applet's
 *    commands; an identity lock refuses the next handshake).
 *
 * Secrets: identity private keys (KeyObjects, used to sign inside `sign`), PIN values handed to the
 * PIN service, retired PSK and ticket keys (wiped once the change committed). imports bytes/,
 * protocol/, card/.
 */
import { constants as cryptoConstants, sign as nodeSign } from 'node:crypto';
import { equalBytes, wipe } from '../../bytes/index.js';
import { KeyType } from '../../protocol/index.js';
import { generateIdentity } from '../identity.js';
import { leafHostNames } from '../names.js';
import type { CardState, IdentityRecord } from '../state.js';
import type { CardServices } from '../services/services.js';
import { slotLabel } from '../services/security-domain.js';
import { blankRecord, type IdentityKeysDraft, type IdentityKeysView, type IsdDraft, type IsdPlatform, type IsdRecord, type ManagedApplet } from './isd/index.js';

const BLANK = blankRecord();

function keysView(state: () => CardState): IdentityKeysView {
  const find = (slot: number): IdentityRecord | undefined => state().identities.find((i) => i.label === slotLabel(slot));
  return {
    key(slot) {
      const rec = find(slot);
      return rec ? { algorithm: KeyType[rec.keyType], spki: rec.spki } : undefined;
    },
    sign(slot, data) {
      const rec = find(slot);
      if (!rec) throw new RangeError(`no key in slot ${slot}`);
      if (rec.keyType === 'rsa2048') return new Uint8Array(nodeSign('sha256', data, { key: rec.privateKey, padding: cryptoConstants.RSA_PKCS1_PADDING }));
      return new Uint8Array(nodeSign('sha256', data, { key: rec.privateKey, dsaEncoding: 'der' }));
    },
  };
}

const sameList = (a: readonly Uint8Array[], b: readonly Uint8Array[]): boolean => a.length === b.length && a.every((x, i) => equalBytes(x, b[i]!));

/** Whether two records agree on everything that decides who may connect. */
function sameTrust(a: IsdRecord, b: IsdRecord): boolean {
  return (
    a.lifecycle === b.lifecycle &&
    sameList(a.lockedApplets, b.lockedApplets) &&
    sameList(a.clientCas, b.clientCas) &&
    sameList(a.revokedSerials, b.revokedSerials) &&
    a.slots.length === b.slots.length &&
    a.slots.every((s, i) => {
      const t = b.slots[i]!;
      return s.slot === t.slot && s.status === t.status && s.locked === t.locked && s.policy === t.policy;
    })
  );
}

/** The ISD's platform on the card services; `applets` lists the other applets of the card. */
export function cardIsdPlatform(s: CardServices, applets: () => readonly ManagedApplet[]): IsdPlatform {
  const store = s.store;
  return {
    record: () => store.state.isd ?? BLANK,
    identities: () => keysView(() => store.state),
    applets,
    now: () => s.time.now(),
    random: (n) => s.rng.random(n),
    sync: () => s.securityDomain.sync(),
    transaction<T>(fn: (draft: IsdDraft) => T): T {
      const committed = store.state.isd ?? BLANK;
      return store.transaction((st) => {
        st.isd ??= blankRecord();
        let trust = false;
        const retired: (Uint8Array | undefined)[] = [];
        const view = keysView(() => st);
        const at = (slot: number): number => st.identities.findIndex((i) => i.label === slotLabel(slot));
        const replace = (slot: number, f: (r: IdentityRecord) => IdentityRecord): void => {
          const i = at(slot);
          if (i < 0) throw new RangeError(`no key in slot ${slot}`);
          st.identities[i] = f(st.identities[i]!);
          trust = true;
        };
        const identities: IdentityKeysDraft = {
          ...view,
          generate(slot, algorithm) {
            if (at(slot) >= 0) throw new RangeError(`slot ${slot} is occupied`);
            const rec = generateIdentity(slotLabel(slot), algorithm === KeyType.rsa2048 ? 'rsa2048' : 'p256');
            st.identities.push(rec);
            return rec.spki.slice();
          },
          setChain(slot, chain) {
            replace(slot, (r) => ({ ...r, chain: chain.map((c) => c.slice()), hostNames: chain.length ? hostNames(chain[0]!) : [] }));
          },
          setPolicy(slot, p) {
            replace(slot, (r) => ({ ...r, clientAuth: p.clientAuth, exportAllowed: p.exportAllowed }));
          },
          delete(slot) {
            const i = at(slot);
            if (i < 0) return;
            st.identities.splice(i, 1);
            trust = true;
          },
          deleteAll() {
            st.identities = [];
            for (const p of st.psks) retired.push(p.key);
            st.psks = [];
            trust = true;
          },
        };
        const draft: IsdDraft = {
          record: st.isd,
          identities,
          pins: { reset: (pin, padded) => s.pins.reset(pin, padded) },
          clock: { setFloor: (t) => s.time.setFloor(t) },
        };
        const result = fn(draft);
        if (trust || !sameTrust(committed, st.isd)) {
          // Nothing made under the old rules resumes: a new ticket key at the next need, no cached session.
          const old = st.ticketKey;
          if (old) retired.push(old.key, old.id);
          st.ticketKey = undefined;
          store.afterCommit(() => {
            wipe(...retired);
            s.tls.sessionCache.clear();
          });
        }
        return result;
      });
    },
  };
}

function hostNames(leaf: Uint8Array): string[] {
  try {
    return leafHostNames(leaf);
  } catch {
    return [];
  }
}
