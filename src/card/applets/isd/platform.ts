/**
 * card/applets/isd/platform: `IsdPlatform`, everything the security domain needs from the rest of
 * the card — and nothing else: the ISD imports no other card file. The card OS implements it on
 * top of its persistent store and the TLS applet's state; tests implement it in memory
 * (test/card/isd/fake-platform.ts). imports isd/record (types) and gp/admin (types).
 *
 * Persistence rule: every state change of one command happens inside ONE `transaction` call. The
 * platform hands `fn` a draft (a copy of the ISD record plus transactional access to the TLS
 * applet's identity keys, PINs and clock floor), and when `fn` returns it commits the whole draft
 * with one atomic write; if `fn` throws, or the write fails or is cut, nothing of it is committed
 * and `record()` still returns the previous state. The ISD keeps no persistent fact in RAM: after a
 * power cut the card loads the old or the new state, and a new IsdApplet starts from it.
 */
import type { KeyAlg } from '../../../gp/admin/constants.js';
import type { IsdRecord } from './record.js';

/** Public facts of an identity key the TLS applet holds. */
export interface IdentityKeyInfo {
  readonly algorithm: KeyAlg;
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Uint8Array;
}

/** The identity policy the TLS applet enforces for a slot. */
export interface IdentityPolicyBits {
  readonly exportAllowed: boolean;
  readonly clientAuth: 'none' | 'optional' | 'required';
}

/** Read access to the identity keys (slots 1..8) of the TLS applet. */
export interface IdentityKeysView {
  /** The key in `slot`, or undefined when the slot holds none. */
  key(slot: number): IdentityKeyInfo | undefined;
  /**
   * Signs `data` with the slot's private key, inside the card: ecdsa-with-SHA256 (DER) for P-256,
   * RSASSA-PKCS1-v1_5 with SHA-256 for RSA-2048. Throws when the slot is empty.
   */
  sign(slot: number, data: Uint8Array): Uint8Array;
}

/** Changes to the identity keys, staged in the transaction's draft. */
export interface IdentityKeysDraft extends IdentityKeysView {
  /** Generates a key pair in the card into an empty slot; returns its SPKI. The private key never leaves. */
  generate(slot: number, algorithm: KeyAlg): Uint8Array;
  /** The certificate chain (leaf first) the TLS applet serves for the slot; empty = serve nothing. */
  setChain(slot: number, chain: readonly Uint8Array[]): void;
  setPolicy(slot: number, policy: IdentityPolicyBits): void;
  /** Deletes (wipes) the slot's key, chain and policy. */
  delete(slot: number): void;
  /** Card termination: wipes every identity key the card holds, in slots or not. */
  deleteAll(): void;
}

/** PIN administration of the TLS applet (ResetPin), staged in the draft. */
export interface PinsDraft {
  /**
   * Unblocks `pin` (its retry counter back to the maximum) and, when `newPadded` is given (8 bytes:
   * 4–8 ASCII digits then FF), sets it as the new value. The ISD has checked the format; the
   * platform copies (hashes) what it keeps, since the ISD wipes `newPadded` afterwards.
   */
  reset(pin: 'user' | 'operator', newPadded: Uint8Array | undefined): void;
}

/** The card clock's floor (the TLS applet's time model), staged in the draft. */
export interface ClockDraft {
  /** Sets the persisted lower bound of card time to `unixSeconds`, forward or back. */
  setFloor(unixSeconds: number): void;
}

/** What `transaction` hands to its function: all of it is committed together, or none of it. */
export interface IsdDraft {
  /** A private, mutable copy of the ISD record. */
  readonly record: IsdRecord;
  readonly identities: IdentityKeysDraft;
  readonly pins: PinsDraft;
  readonly clock: ClockDraft;
}

/** An applet the security domain manages (GET STATUS P1 40, SET STATUS P1 40 targets). */
export interface ManagedApplet {
  readonly aid: Uint8Array;
  /** Whether the applet holds the identity slots (the TLS applet): SET STATUS may address AID ‖ slot. */
  readonly hasIdentities?: boolean;
}

export interface IsdPlatform {
  /** The ISD record as last committed (the caller never mutates it). */
  record(): IsdRecord;
  /** Read access to identity keys outside any transaction. */
  identities(): IdentityKeysView;
  /**
   * Runs `fn` on a draft and commits it with one atomic write when `fn` returns; a throw from `fn`
   * or from the write leaves the committed state unchanged (and is rethrown). Returns fn's result.
   */
  transaction<T>(fn: (draft: IsdDraft) => T): T;
  /** The applets on the card other than the security domain itself. */
  applets(): readonly ManagedApplet[];
  /** The card's current time (Unix seconds; 0 = unknown): audit entries and signed heads. */
  now(): number;
  /** The card RNG (random card challenges once the sequence counter is exhausted). */
  random(n: number): Uint8Array;
  /**
   * Makes durable what the card appended to the record outside a transaction (TLS session audit
   * entries, kept in RAM until the next write), before the log head is signed or reported.
   */
  sync?(): void;
}
