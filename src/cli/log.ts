/**
 * The CLI's log (stderr): pino, in one of two formats — JSON lines (pino's own, for machines: the
 * default when stderr is not a terminal, or `--log-format json`), or one human-readable line per
 * entry (the default on a terminal, or `--log-format pretty`):
 *
 *   19:04:05 WARN  session ended with an error  code=ERR_TLS_HANDSHAKE_FAILED peer=127.0.0.1:50412
 *
 * The pretty form is a small synchronous formatter of pino's JSON line (log entries are rare: session
 * errors, card health; never per record), so no worker thread and no extra dependency.
 * Level: SETLS_LOG (default info). imports nothing of the project.
 */
import pino from 'pino';

export type LogFormat = 'json' | 'pretty';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const OMIT = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** One pino JSON line as `HH:MM:SS LEVEL message key=value …` (a line that is not JSON is kept as is). */
export function formatLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : line + '\n';
  }
  const t = typeof o.time === 'number' ? new Date(o.time).toTimeString().slice(0, 8) : '';
  const level = (LEVELS[o.level as number] ?? String(o.level)).padEnd(5);
  const rest = Object.entries(o)
    .filter(([k, v]) => !OMIT.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ');
  return `${t} ${level} ${String(o.msg ?? '')}${rest ? `  ${rest}` : ''}\n`;
}

/** 'pretty' on a terminal, 'json' otherwise; an explicit choice (flag, SETLS_LOG_FORMAT) wins. */
export function logFormat(choice: string | undefined = process.env.SETLS_LOG_FORMAT, tty = process.stderr.isTTY === true): LogFormat {
  if (choice === undefined || choice === '' || choice === 'auto') return tty ? 'pretty' : 'json';
  if (choice === 'json' || choice === 'pretty') return choice;
  throw new RangeError(`--log-format must be json, pretty or auto, not '${choice}'`);
}

/** The CLI's logger on stderr (or `write`, for tests), in `format`. */
export function cliLogger(format: LogFormat = logFormat(), write: (s: string) => void = (s) => void process.stderr.write(s)): pino.Logger {
  const level = process.env.SETLS_LOG ?? 'info';
  if (format === 'json') return pino({ level }, { write });
  return pino({ level }, { write: (line: string) => write(formatLine(line)) });
}
