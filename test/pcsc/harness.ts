/**
 * Test harness for the real PC/SC path: a private network namespace (`unshare -n`) holding pcscd
 * with the vsmartcard vpcd driver (server mode, loopback only, quickack routes: test/pcsc/netns.sh),
 * and `setls card serve` joined to that namespace with `nsenter`. Only one pcscd runs per machine
 * (its socket is always /run/pcscd/pcscd.comm), so a machine-wide lock serialises users of this
 * harness; stale /run/pcscd files of a dead pcscd are removed first. Every process is stopped by PID.
 *
 * `pcscPrerequisites()` says why the harness cannot run (not root, tool missing, binding missing,
 * another live pcscd); the tests skip with that reason locally and fail under CI=true.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listPcscReaders, loadPcsc } from '../../src/transport/index.js';

export const BIN = join(process.cwd(), 'bin/setls.mjs');
export const NETNS_SH = join(process.cwd(), 'test/pcsc/netns.sh');
export const VPCD_DRIVER = '/usr/lib/pcsc/drivers/serial/libifdvpcd.so';
export const READER = 'Virtual PCD 00 00';
const LOCK_DIR = '/tmp/setls-pcscd.lock';

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** undefined when everything is there; else the reason. */
export async function pcscPrerequisites(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'PC/SC tests need Linux';
  if (process.getuid?.() !== 0) return 'PC/SC tests need root (unshare -n, pcscd)';
  for (const t of ['pcscd', 'unshare', 'nsenter', 'ip', 'ss', 'opensc-tool', 'openssl', 'curl']) if (!which(t)) return `${t} is not installed`;
  if (!existsSync(VPCD_DRIVER)) return 'vsmartcard-vpcd is not installed';
  try {
    await loadPcsc();
  } catch (e) {
    return (e as Error).message;
  }
  const probe = spawnSync('unshare', ['-n', 'true']);
  if (probe.status !== 0) return 'unshare -n does not work here';
  return undefined;
}

/** Removes /run/pcscd files left by a dead pcscd; throws when a live pcscd owns them. */
function clearStalePcscd(): void {
  const pidFile = '/run/pcscd/pcscd.pid';
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) throw new Error(`another pcscd (pid ${pid}) is running; only one pcscd per machine`);
  }
  for (const f of ['/run/pcscd/pcscd.comm', '/run/pcscd/pcscd.pid']) rmSync(f, { force: true });
}

/** A machine-wide lock (mkdir is atomic); a lock held by a dead process is taken over. */
export async function acquireLock(timeoutMs = 180_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(LOCK_DIR);
      writeFileSync(join(LOCK_DIR, 'pid'), String(process.pid));
      return () => rmSync(LOCK_DIR, { recursive: true, force: true });
    } catch {
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(LOCK_DIR, 'pid'), 'utf8'));
      } catch {
        // being created right now
      }
      if (Number.isInteger(owner) && !alive(owner)) rmSync(LOCK_DIR, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`the pcscd lock ${LOCK_DIR} is held by pid ${owner}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(150);
  }
}

export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  out: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function startProc(cmd: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = {
    child,
    pid: child.pid!,
    out: '',
    stop: (signal: NodeJS.Signals = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        process.kill(child.pid!, signal);
      }),
  };
  child.stdout!.on('data', (d: Buffer) => (p.out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (p.out += d.toString()));
  return p;
}

/** The vpcd slot port of the first reader (0x8C7B); the second is + 1. */
export const VPCD_PORT = 0x8c7b;

/**
 * pcscd (in its own network namespace) plus the card process joined to it. `reversed`: the card
 * listens (`card serve --reversed`) and pcscd connects to it (reader.conf DEVICENAME 127.0.0.1:0x8C7B);
 * the namespace is made first, the card started in it, and pcscd only once the card listens.
 */
export class PcscLab {
  pcscd: Proc | undefined;
  card: Proc | undefined;
  private release: (() => void) | undefined;

  constructor(
    readonly root: string,
    readonly cardDir: string,
    readonly mode: 'server' | 'reversed' = 'server',
  ) {}

  async start(): Promise<void> {
    this.release = await acquireLock();
    clearStalePcscd();
    const conf = join(this.root, `reader.conf.d-${this.mode}`);
    mkdirSync(conf, { recursive: true });
    const device = this.mode === 'reversed' ? '127.0.0.1:0x8C7B' : '/dev/null:0x8C7B';
    writeFileSync(join(conf, 'vpcd'), `FRIENDLYNAME "Virtual PCD"\nDEVICENAME   ${device}\nLIBPATH      ${VPCD_DRIVER}\nCHANNELID    0x8C7B\n`);
    if (this.mode === 'reversed') {
      this.pcscd = startProc('unshare', ['-n', 'bash', NETNS_SH, conf, String(VPCD_PORT)]);
      const ownNs = readlinkSync('/proc/self/ns/net');
      // The namespace exists and its loopback is up (the script says so), so the card lands in it.
      await waitFor('the private network namespace', () => {
        if (this.pcscd!.child.exitCode !== null) throw new Error(`netns.sh exited: ${this.pcscd!.out}`);
        return this.pcscd!.out.includes('netns ready') && readlinkSync(`/proc/${this.pcscd!.pid}/ns/net`) !== ownNs ? true : undefined;
      });
      await this.startCard();
      return;
    }
    this.pcscd = startProc('unshare', ['-n', 'bash', NETNS_SH, conf]);
    await waitFor('pcscd', async () => (existsSync('/run/pcscd/pcscd.comm') && (await listPcscReaders()).some((r) => r.name === READER) ? true : undefined));
    await this.startCard();
  }

  /** `setls card serve` inside pcscd's namespace; resolves when pcscd sees the card. */
  async startCard(): Promise<void> {
    const args = ['-t', String(this.pcscd!.pid), '-n', process.execPath, BIN, 'card', 'serve', '--card-dir', this.cardDir];
    if (this.mode === 'reversed') args.push('--reversed');
    this.card = startProc('nsenter', args);
    await waitFor(
      'the card in the reader',
      async () => {
        if (this.card!.child.exitCode !== null) throw new Error(`card serve exited: ${this.card!.out}`);
        return (await listPcscReaders()).find((r) => r.name === READER)?.cardPresent ? true : undefined;
      },
      30_000,
    );
  }

  /** Runs a command inside the lab's network namespace (where the vpcd ports are). */
  inNamespace(cmd: string, args: string[]): Proc {
    return startProc('nsenter', ['-t', String(this.pcscd!.pid), '-n', cmd, ...args]);
  }

  async stopCard(): Promise<void> {
    await this.card?.stop('SIGKILL');
    this.card = undefined;
  }

  async stop(): Promise<void> {
    try {
      await this.card?.stop();
      await this.pcscd?.stop();
      // pcscd removes its socket on SIGTERM; make sure nothing stale stays behind
      if (this.pcscd && !alive(this.pcscd.pid)) for (const f of ['/run/pcscd/pcscd.comm', '/run/pcscd/pcscd.pid']) rmSync(f, { force: true });
    } finally {
      const release = this.release;
      this.release = undefined; // a second stop() must not free a lock someone else holds by then
      release?.();
    }
  }
}
