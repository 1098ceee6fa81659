/**
 * operator/console: the web console served by the operator (issue #16, docs/console.md) — one call
 * mounts the pages and the session endpoints at /console and lets the REST API accept the console's
 * session cookie with its CSRF token. imports console/*, api/server (type only).
 */
import type { OperatorServer } from '../api/server.js';
import type { OperatorStore } from '../store/types.js';
import { cookieAuth } from './cookie-auth.js';
import { CONSOLE_PREFIX, consoleHandler } from './handler.js';
import { ConsoleSessions, type SessionOptions } from './sessions.js';

export { ConsoleSessions, type SessionOptions } from './sessions.js';
export { CONSOLE_PREFIX } from './handler.js';

export function mountConsole(server: OperatorServer, store: OperatorStore, o: SessionOptions = {}): ConsoleSessions {
  const sessions = new ConsoleSessions(store, o);
  server.mount(CONSOLE_PREFIX, consoleHandler(sessions));
  server.useCookieAuth(cookieAuth(sessions));
  return sessions;
}
