/**
 * The admin socket protocol, and its client transport: how an administrative command reaches a card
 * that a running setls process owns (the card folder is locked by it). The running process relays
 * the command's APDUs to its card on a logical channel of their own (admin-relay.ts), so the card
 * stays the one owner of its state. The socket is `<card-dir>/admin.sock`, mode 0600, in the
 * card folder (mode 0700).
 *
 * Frames, both ways: length(4, big-endian, of what follows) ‖ type(1) ‖ body.
 *   S→C  'H'  version(1) = 01 ‖ flags(1: bit 0 extended APDUs) ‖ server nonce(32) ‖ server PID(4)
 *   C→S  'A'  client nonce(32) ‖ HMAC-SHA256(K, "client" ‖ server nonce ‖ client nonce)
 *   S→C  'O'  HMAC-SHA256(K, "server" ‖ server nonce ‖ client nonce)      (authenticated)
 *        'E'  UTF-8 message, then the server closes                         (refused)
 *   C→S  'C'  command APDU (sent on channel 0; the relay moves it to its channel)
 *   S→C  'R'  response APDU
 * K = SHA-256("setls-admin-socket/1" ‖ 00 ‖ operator PIN): both ends read the operator PIN file
 * (<card-dir>.admin.json); the PIN itself never crosses. Each side proves it knows K over fresh
 * nonces, so a stale socket or another process cannot pose as the server, and only a holder of the
 * operator PIN file gets a channel. The card's own access rules still apply to every APDU (the
 * client VERIFYs the operator PIN on its channel as it would in-process).
 *
 * Bounded: frames of at most MAX_ADMIN_FRAME bytes; every wait on the peer has a deadline.
 * imports bytes/ and transport/ (card-transport) and node built-ins.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import { SetlsError, concat, freshCopy } from '../bytes/index.js';
import { checkApdu, transportClosed, type CardTransport } from './card-transport.js';

export const ADMIN_SOCKET_FILE = 'admin.sock';
export const ADMIN_PROTOCOL_VERSION = 1;
/** Largest frame (type + body): an extended APDU and its response fit. */
export const MAX_ADMIN_FRAME = 1 + 4 + 3 + 65535 + 2 + 65536;
/** Unix socket paths longer than this cannot be bound (sun_path is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH = 107;

export const AdminFrame = { hello: 0x48, auth: 0x41, ok: 0x4f, error: 0x45, command: 0x43, response: 0x52 } as const;

const NONCE = 32;
const MAC = 32;

/** The shared key of both ends, from the operator PIN (a string of digits). */
export function adminKey(operatorPin: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update('setls-admin-socket/1\0').update(operatorPin, 'utf8').digest());
}

export function adminMac(key: Uint8Array, role: 'client' | 'server', serverNonce: Uint8Array, clientNonce: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', key).update(role).update(serverNonce).update(clientNonce).digest());
}

export function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function encodeAdminFrame(type: number, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const n = 1 + body.length;
  if (n > MAX_ADMIN_FRAME) throw new SetlsError('ERR_ADMIN_SOCKET_FRAME', `admin frame of ${n} bytes is too long`);
  const head = Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff, type);
  return concat(head, body);
}

export interface AdminFrameValue {
  readonly type: number;
  readonly body: Uint8Array;
}

/** Incremental frame decoder; throws ERR_ADMIN_SOCKET_FRAME on an empty or oversize frame. */
export class AdminFrameDecoder {
  private buf: Uint8Array = new Uint8Array(0);

  push(chunk: Uint8Array): AdminFrameValue[] {
    this.buf = this.buf.length === 0 ? freshCopy(chunk) : concat(this.buf, chunk);
    const out: AdminFrameValue[] = [];
    for (;;) {
      if (this.buf.length < 4) break;
      const n = ((this.buf[0]! << 24) >>> 0) + (this.buf[1]! << 16) + (this.buf[2]! << 8) + this.buf[3]!;
      if (n < 1 || n > MAX_ADMIN_FRAME) throw new SetlsError('ERR_ADMIN_SOCKET_FRAME', `admin frame length ${n} out of range`);
      if (this.buf.length < 4 + n) break;
      out.push({ type: this.buf[4]!, body: this.buf.slice(5, 4 + n) });
      this.buf = this.buf.slice(4 + n);
    }
    return out;
  }
}

/** Reads frames from a socket, one at a time, each with a deadline. */
class FrameReader {
  private readonly queue: AdminFrameValue[] = [];
  private waiter: { resolve: (f: AdminFrameValue) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private readonly decoder = new AdminFrameDecoder();

  constructor(socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      try {
        for (const f of this.decoder.push(d)) this.deliver(f);
      } catch (e) {
        this.fail(e as Error);
        socket.destroy();
      }
    });
    socket.on('close', () => this.fail(new SetlsError('ERR_ADMIN_SOCKET', 'the admin socket was closed by the server')));
    socket.on('error', (e) => this.fail(new SetlsError('ERR_ADMIN_SOCKET', `admin socket: ${e.message}`, { cause: e })));
  }

  private deliver(f: AdminFrameValue): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(f);
    } else this.queue.push(f);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(this.failure);
    }
  }

  next(timeoutMs: number, what: string): Promise<AdminFrameValue> {
    const f = this.queue.shift();
    if (f) return Promise.resolve(f);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        reject(new SetlsError('ERR_ADMIN_SOCKET_TIMEOUT', `${what}: no answer from the admin socket within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (v) => (clearTimeout(t), resolve(v)),
        reject: (e) => (clearTimeout(t), reject(e)),
      };
    });
  }
}

export interface AdminConnectOptions {
  /** The operator PIN (from <card-dir>.admin.json). */
  readonly operatorPin: string;
  /** Deadline for connecting and authenticating, ms. Default 10000. */
  readonly connectTimeoutMs?: number;
  /** Deadline for each APDU's response, ms. Default 60000 (key generation is slow). */
  readonly apduTimeoutMs?: number;
}

/**
 * A CardTransport to a card owned by another setls process, through its admin socket. APDUs are
 * sent as on channel 0; the serving process relays them on its admin channel.
 */
export class AdminSocketTransport implements CardTransport {
  readonly extendedLength: boolean;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly socket: net.Socket,
    private readonly reader: FrameReader,
    /** The PID of the process that owns the card. */
    readonly serverPid: number,
    extended: boolean,
    private readonly apduTimeoutMs: number,
  ) {
    this.extendedLength = extended;
  }

  /** Connects and authenticates (mutually). ERR_ADMIN_SOCKET_AUTH when the operator PIN files differ. */
  static async connect(path: string, o: AdminConnectOptions): Promise<AdminSocketTransport> {
    const timeout = o.connectTimeoutMs ?? 10_000;
    const socket = net.createConnection(path);
    const reader = new FrameReader(socket);
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new SetlsError('ERR_ADMIN_SOCKET_TIMEOUT', `no connection to ${path} within ${timeout} ms`)), timeout);
        socket.once('connect', () => (clearTimeout(t), resolve()));
        socket.once('error', (e) => (clearTimeout(t), reject(new SetlsError('ERR_ADMIN_SOCKET', `cannot connect to ${path}: ${e.message}`, { cause: e }))));
      });
      const hello = await reader.next(timeout, 'admin socket hello');
      if (hello.type === AdminFrame.error) throw refused(hello.body);
      if (hello.type !== AdminFrame.hello || hello.body.length !== 2 + NONCE + 4 || hello.body[0] !== ADMIN_PROTOCOL_VERSION) {
        throw new SetlsError('ERR_ADMIN_SOCKET', `${path} does not speak the setls admin protocol version ${ADMIN_PROTOCOL_VERSION}`);
      }
      const extended = (hello.body[1]! & 0x01) !== 0;
      const serverNonce = hello.body.subarray(2, 2 + NONCE);
      const b = hello.body.subarray(2 + NONCE);
      const pid = ((b[0]! << 24) >>> 0) + (b[1]! << 16) + (b[2]! << 8) + b[3]!;
      const key = adminKey(o.operatorPin);
      const clientNonce = new Uint8Array(randomBytes(NONCE));
      socket.write(encodeAdminFrame(AdminFrame.auth, concat(clientNonce, adminMac(key, 'client', serverNonce, clientNonce))));
      const answer = await reader.next(timeout, 'admin socket authentication');
      if (answer.type === AdminFrame.error) throw refused(answer.body);
      if (answer.type !== AdminFrame.ok || answer.body.length !== MAC || !macEqual(answer.body, adminMac(key, 'server', serverNonce, clientNonce))) {
        throw new SetlsError('ERR_ADMIN_SOCKET_AUTH', `the process behind ${path} could not prove it knows the operator PIN`);
      }
      key.fill(0);
      return new AdminSocketTransport(socket, reader, pid, extended, o.apduTimeoutMs ?? 60_000);
    } catch (e) {
      socket.destroy();
      throw e;
    }
  }

  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    try {
      checkApdu(apdu);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.closed) return Promise.reject(transportClosed());
    const cmd = freshCopy(apdu);
    const run = async (): Promise<Uint8Array> => {
      if (this.closed) throw transportClosed();
      this.socket.write(encodeAdminFrame(AdminFrame.command, cmd));
      const f = await this.reader.next(this.apduTimeoutMs, 'admin APDU');
      if (f.type === AdminFrame.error) throw refused(f.body);
      if (f.type !== AdminFrame.response || f.body.length < 2) throw new SetlsError('ERR_APDU_RESPONSE', 'the admin socket answered something other than a response APDU');
      return f.body;
    };
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    await new Promise<void>((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 5000).unref();
    });
  }
}

function refused(body: Uint8Array): SetlsError {
  const msg = new TextDecoder().decode(body);
  const code = /authentication/.test(msg) ? 'ERR_ADMIN_SOCKET_AUTH' : 'ERR_ADMIN_SOCKET';
  return new SetlsError(code, `the serving process refused: ${msg}`);
}
