/**
 * The admin relay: the serving side of the admin socket (admin-socket.ts). A process that owns a
 * card folder (serve https / serve coap / demo) listens on `<card-dir>/admin.sock` (mode 0600) and
 * relays the APDUs of authenticated administrative commands to its own card, on a logical channel of
 * their own, so an admin command never opens the card folder a second time and never overwrites the
 * server's state with an older copy: the card applies it, as the one owner of its state.
 *
 *  - The admin channel is opened with MANAGE CHANNEL at start (before the server serves, so nothing
 *    else is talking on channel 0). Admin clients are served one at a time; each gets a clean channel:
 *    when a client leaves, a new channel is opened FROM the admin channel and the old one is closed
 *    (its PIN verification, chain and pending response go with it). Channel 0 is never touched again.
 *  - APDUs arrive as on channel 0 (CLA 00 / A0, and 80 / 84 for the security domain, whose SCP03
 *    MACs exclude the channel bits); the relay changes only the channel bits of CLA (the rule
 *    GlobalPlatform admin agents follow). A CLA for another channel, or MANAGE CHANNEL, is answered
 *    `6881` without reaching the card.
 *  - Authentication: both ends prove knowledge of the operator PIN (admin-socket.ts); the PIN file is
 *    read at each connection. Deadlines on authentication and idleness; at most `maxClients`
 *    connections (others are refused at once).
 *
 * imports bytes/, apdu/ (status words), protocol/ (class byte, MANAGE CHANNEL), transport/ and node built-ins.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, rmSync } from 'node:fs';
import net from 'node:net';
import { SetlsError, concat } from '../bytes/index.js';
import { SW } from '../apdu/index.js';
import { CLA_GP, CLA_ISO, CLA_PROPRIETARY, Channels, Ins, encodeCla } from '../protocol/index.js';
import { ADMIN_PROTOCOL_VERSION, AdminFrame, AdminFrameDecoder, MAX_SOCKET_PATH, adminKey, adminMac, encodeAdminFrame, macEqual, type AdminFrameValue } from './admin-socket.js';
import type { CardTransport } from './card-transport.js';

export interface AdminRelayOptions {
  /** Where to listen (`<card-dir>/admin.sock`); a stale socket file there is replaced (the caller holds the folder lock). */
  readonly socketPath: string;
  /** The card (its in-process transport: APDUs are serialised there with the server's own). */
  readonly transport: CardTransport;
  /** Reads the operator PIN (the PIN file); called at each connection. */
  readonly operatorPin: () => string;
  readonly log?: (line: string) => void;
  /** Deadline for a client to authenticate, ms. Default 10000. */
  readonly authTimeoutMs?: number;
  /** A client silent this long is disconnected, ms. Default 120000. */
  readonly idleTimeoutMs?: number;
  /** Connections at once (one is served, the others wait). Default 4. */
  readonly maxClients?: number;
}

const SW_CHANNEL_NOT_SUPPORTED = Uint8Array.of(Channels.swChannelNotSupported >> 8, Channels.swChannelNotSupported & 0xff);
/** GlobalPlatform's class with secure messaging on channel 0 (SCP03-wrapped security domain commands). */
const CLA_GP_SM = 0x84;

const swOf = (r: Uint8Array): number => (r[r.length - 2]! << 8) | r[r.length - 1]!;

export class AdminRelay {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** One admin client at a time uses the channel. */
  private turn: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly o: AdminRelayOptions,
    private channel: number,
  ) {
    this.server = net.createServer((s) => this.accept(s));
  }

  /** The logical channel admin clients currently use on the card. */
  get adminChannel(): number {
    return this.channel;
  }

  get socketPath(): string {
    return this.o.socketPath;
  }

  /**
   * Opens the admin channel on the card and listens. Call it before the server takes clients.
   * ERR_ADMIN_SOCKET when the path is too long or the card has no free logical channel.
   */
  static async start(o: AdminRelayOptions): Promise<AdminRelay> {
    if (Buffer.byteLength(o.socketPath) > MAX_SOCKET_PATH) {
      throw new SetlsError('ERR_ADMIN_SOCKET', `the admin socket path ${o.socketPath} is longer than ${MAX_SOCKET_PATH} bytes`);
    }
    const opened = await o.transport.transmit(Uint8Array.of(CLA_ISO, Ins.manageChannel, Channels.open, 0x00, 0x01));
    if (swOf(opened) !== 0x9000 || opened.length !== 3) {
      throw new SetlsError('ERR_ADMIN_SOCKET', `the card opened no logical channel for administration (SW ${swOf(opened).toString(16).padStart(4, '0')})`);
    }
    const relay = new AdminRelay(o, opened[0]!);
    try {
      rmSync(o.socketPath, { force: true }); // stale: the folder lock is ours
      await new Promise<void>((resolve, reject) => {
        relay.server.once('error', reject);
        relay.server.listen(o.socketPath, () => {
          relay.server.off('error', reject);
          resolve();
        });
      });
      chmodSync(o.socketPath, 0o600);
    } catch (e) {
      await relay.closeChannel();
      throw new SetlsError('ERR_ADMIN_SOCKET', `cannot listen on ${o.socketPath}: ${(e as Error).message}`, { cause: e });
    }
    relay.server.on('error', (e) => relay.log(`admin socket error: ${e.message}`));
    return relay;
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  private accept(socket: net.Socket): void {
    if (this.closed || this.sockets.size >= (this.o.maxClients ?? 4)) {
      socket.end(encodeAdminFrame(AdminFrame.error, new TextEncoder().encode('too many admin connections; try again')));
      return;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    void this.serveClient(socket).catch((e: unknown) => {
      this.log(`admin client: ${(e as Error).message}`);
      socket.destroy();
    });
  }

  private async serveClient(socket: net.Socket): Promise<void> {
    const frames = new FrameQueue(socket);
    const refuse = (msg: string): void => {
      socket.end(encodeAdminFrame(AdminFrame.error, new TextEncoder().encode(msg)));
    };
    let key: Uint8Array;
    try {
      key = adminKey(this.o.operatorPin());
    } catch (e) {
      refuse(`the serving process cannot read its operator PIN file: ${(e as Error).message}`);
      return;
    }
    const serverNonce = new Uint8Array(randomBytes(32));
    const pid = process.pid;
    const hello = concat(Uint8Array.of(ADMIN_PROTOCOL_VERSION, this.o.transport.extendedLength ? 1 : 0), serverNonce, Uint8Array.of(pid >>> 24, (pid >>> 16) & 0xff, (pid >>> 8) & 0xff, pid & 0xff));
    socket.write(encodeAdminFrame(AdminFrame.hello, hello));
    const auth = await frames.next(this.o.authTimeoutMs ?? 10_000);
    if (!auth || auth.type !== AdminFrame.auth || auth.body.length !== 64) {
      refuse('authentication expected');
      return;
    }
    const clientNonce = auth.body.subarray(0, 32);
    if (!macEqual(auth.body.subarray(32), adminMac(key, 'client', serverNonce, clientNonce))) {
      key.fill(0);
      this.log('admin socket: a client failed authentication (wrong operator PIN file)');
      refuse('authentication failed: the operator PIN files differ');
      return;
    }
    socket.write(encodeAdminFrame(AdminFrame.ok, adminMac(key, 'server', serverNonce, clientNonce)));
    key.fill(0);
    // One client at a time on the admin channel.
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const before = this.turn;
    this.turn = before.then(() => mine);
    await before;
    try {
      for (;;) {
        const f = await frames.next(this.o.idleTimeoutMs ?? 120_000);
        if (!f) break; // closed or idle
        if (f.type !== AdminFrame.command || f.body.length < 4) {
          refuse('command APDU expected');
          break;
        }
        const res = await this.relay(f.body);
        if (socket.destroyed) break;
        socket.write(encodeAdminFrame(AdminFrame.response, res));
      }
    } finally {
      socket.end();
      await this.renewChannel();
      release();
    }
  }

  /** One APDU from a client (as on channel 0) to the admin channel. */
  private async relay(apdu: Uint8Array): Promise<Uint8Array> {
    const cla = apdu[0]!;
    const ins = apdu[1]!;
    const moved = apdu.slice();
    if (cla === CLA_ISO || cla === CLA_PROPRIETARY || cla === CLA_GP) {
      if (cla === CLA_ISO && ins === Ins.manageChannel) return SW_CHANNEL_NOT_SUPPORTED.slice(); // MANAGE CHANNEL stays the relay's
      moved[0] = encodeCla(cla === CLA_ISO ? 'iso' : cla === CLA_GP ? 'gp' : 'proprietary', this.channel);
    } else if (cla === CLA_GP_SM) {
      // GlobalPlatform secure messaging (the security domain's SCP03): 84–87 on channels 0–3, E0–EF
      // beyond; the C-MAC covers CLA with its channel bits cleared, so moving the channel keeps it.
      moved[0] = this.channel < 4 ? CLA_GP_SM | this.channel : 0xe0 | (this.channel - 4);
    } else return SW_CHANNEL_NOT_SUPPORTED.slice();
    try {
      return await this.o.transport.transmit(moved);
    } finally {
      moved.fill(0); // may hold a PIN
    }
  }

  /** A clean admin channel for the next client: open one from the current channel, close the current. */
  private async renewChannel(): Promise<void> {
    if (this.closed) return;
    const n = this.channel;
    const open = Uint8Array.of(encodeCla('iso', n), Ins.manageChannel, Channels.open, 0x00, 0x01);
    try {
      let r = await this.o.transport.transmit(open);
      if (swOf(r) === SW.lastCommandOfChainExpected) r = await this.o.transport.transmit(open); // a chain the client left open
      if (swOf(r) !== SW.ok || r.length !== 3) throw new Error(`MANAGE CHANNEL open answered ${swOf(r).toString(16)}`);
      const m = r[0]!;
      await this.o.transport.transmit(Uint8Array.of(encodeCla('iso', n), Ins.manageChannel, Channels.close, 0x00));
      this.channel = m;
    } catch (e) {
      this.log(`admin socket: cannot renew the admin channel ${n}: ${(e as Error).message}`);
    }
  }

  private async closeChannel(): Promise<void> {
    try {
      await this.o.transport.transmit(Uint8Array.of(encodeCla('iso', this.channel), Ins.manageChannel, Channels.close, 0x00));
    } catch {
      // the transport is closing
    }
  }

  /** Stops listening, disconnects clients, removes the socket file and closes the admin channel. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.o.socketPath, { force: true });
    await this.turn;
    await this.closeChannel();
  }
}

/** Frames of one connection, in order; `next` resolves undefined on close, error, bad framing or the deadline. */
class FrameQueue {
  private readonly frames: AdminFrameValue[] = [];
  private waiter: ((f: AdminFrameValue | undefined) => void) | undefined;
  private ended = false;
  private readonly decoder = new AdminFrameDecoder();

  constructor(socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      try {
        for (const f of this.decoder.push(d)) {
          if (this.waiter) {
            const w = this.waiter;
            this.waiter = undefined;
            w(f);
          } else if (this.frames.length < 4) this.frames.push(f);
          else socket.destroy(); // a client that does not wait for answers
        }
      } catch {
        socket.destroy();
      }
    });
    const end = (): void => {
      this.ended = true;
      const w = this.waiter;
      this.waiter = undefined;
      w?.(undefined);
    };
    socket.on('close', end);
    socket.on('end', end);
  }

  next(timeoutMs: number): Promise<AdminFrameValue | undefined> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      this.waiter = (v) => {
        clearTimeout(t);
        resolve(v);
      };
    });
  }
}
