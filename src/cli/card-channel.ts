/**
 * The shared memory between the host and a card thread (cli/card-thread.ts, cli/card-worker.ts):
 * one APDU at a time, as a card takes them. A SharedArrayBuffer holds a control word (who holds the
 * buffer), the length of the bytes in it, and the bytes: the command APDU the host wrote, then the
 * response APDU the card wrote over it. Waking the other side is a futex (Atomics.notify); the card
 * thread blocks in Atomics.wait (it has nothing else to do), the host waits with Atomics.waitAsync
 * (its event loop keeps running). No message is serialised, no object crosses: only bytes.
 * imports nothing.
 */

/** Control word values (Int32 at offset 0). */
export const CardChannelState = {
  /** The host may write a command. */
  idle: 0,
  /** A command is in the buffer: the card's turn. */
  command: 1,
  /** A response is in the buffer: the host's turn. */
  response: 2,
  /** The host asks the card to close (write its state, release its folder). */
  closing: 3,
  /** The card closed; the thread ends. */
  closed: 4,
  /** The card threw while processing the command; the buffer holds the message (UTF-8). */
  fault: 5,
  /** The card thread is gone (set by the host when the worker exits). */
  dead: 6,
} as const;

/** Offset of the bytes: after the control word and the length. */
export const CARD_CHANNEL_DATA = 8;
/** Room for the largest command (4 + 3 + 65535 + 2 bytes) and the largest response (65536 + 2). */
export const CARD_CHANNEL_CAPACITY = 65552;

export function newCardChannel(): SharedArrayBuffer {
  return new SharedArrayBuffer(CARD_CHANNEL_DATA + CARD_CHANNEL_CAPACITY);
}
