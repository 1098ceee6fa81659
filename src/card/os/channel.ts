/**
 * card/os/channel: one logical channel as the card OS keeps it (docs/apdu-protocol.md §1.1): the
 * applet selected on it, its security status and default identity (the ChannelContext applets see),
 * and the OS services' buffers — the command chain being reassembled and the response not yet read.
 *
 * Secrets: chain segments (PINs, plaintext, keys on their way in) and the pending response
 * (plaintext, export blobs, exporter output): wiped by `dropChain` / `dropPending` / `clear`.
 * imports bytes/, apdu/ and card/os/.
 */
import { wipe } from '../../bytes/index.js';
import type { PendingResponse } from '../../apdu/index.js';
import type { Applet, ChannelContext } from './applet.js';

/** A command chain being reassembled (P1 More segmentation). */
export interface Chain {
  readonly cla: number;
  readonly ins: number;
  /** P1 without the More bit: every segment of a chain carries the same flags (PROCESS-EAP START/INFO). */
  readonly p1: number;
  readonly p2: number;
  readonly parts: Uint8Array[];
  total: number;
}

export class LogicalChannel implements ChannelContext {
  /** The applet the last successful SELECT chose here; undefined = none. */
  applet: Applet | undefined;
  readonly verified = { user: false, operator: false };
  defaultIdentity: string | undefined;
  chain: Chain | undefined;
  pending: PendingResponse | undefined;

  constructor(readonly number: number) {}

  dropChain(): void {
    if (this.chain) for (const p of this.chain.parts) wipe(p);
    this.chain = undefined;
  }

  dropPending(): void {
    this.pending?.wipe();
    this.pending = undefined;
  }

  /** Back to a fresh channel's state: nothing selected, no PIN verified, no chain or pending response. */
  clear(): void {
    this.applet = undefined;
    this.verified.user = false;
    this.verified.operator = false;
    this.defaultIdentity = undefined;
    this.dropChain();
    this.dropPending();
  }
}
