/**
 * Headless Chromium for the web console's tests (Debian's /usr/bin/chromium through playwright-core,
 * no browser download): launching it, signing in through the page, and screenshots written as test
 * artifacts (test-artifacts/console/<name>.png, gitignored) that are checked — the page's text at
 * the moment of the screenshot must contain what the page is about, and the PNG must be a real,
 * non-trivial image (signature, size, dimensions, more than a couple of colours' worth of bytes).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import { requirePeer } from '../interop/peers.js';

export const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'console');

export function chromiumPath(): string | null {
  if (existsSync('/usr/bin/chromium')) return '/usr/bin/chromium';
  const r = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** requirePeer for chromium: true when it is there; otherwise fails (CI) or skips (locally). */
export function requireChromium(t: TestContext): boolean {
  return requirePeer(t, 'chromium');
}

export async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath()!, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], timeout: 60_000 });
}

/** A page on the operator (its TLS CA is not in Chromium's store: the context ignores that). */
export async function openConsole(browser: Browser, url: string): Promise<Page> {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  ctx.setDefaultTimeout(60_000);
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) errors.push(m.text());
  });
  (page as unknown as { consoleErrors: string[] }).consoleErrors = errors;
  await page.goto(`${url}/console/`);
  return page;
}

export function pageErrors(page: Page): string[] {
  return (page as unknown as { consoleErrors: string[] }).consoleErrors ?? [];
}

/** Waits until the main element shows `name` (data-page) and is no longer loading. */
export async function onPage(page: Page, name: string): Promise<void> {
  await page.waitForSelector(`main[data-page="${name}"]`);
}

export async function signIn(page: Page, token: string): Promise<void> {
  await onPage(page, 'sign-in');
  await page.fill('#token', token);
  await page.click('#signin');
  await onPage(page, 'fleet');
}

/** Screenshot to test-artifacts/console/<name>.png; checks the page text and the image. */
export async function shot(page: Page, name: string, expected: readonly (string | RegExp)[]): Promise<{ text: string; png: Buffer }> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const text = await page.evaluate(() => document.body.innerText);
  const png = await page.screenshot({ fullPage: true });
  writeFileSync(join(ARTIFACTS, `${name}.png`), png);
  writeFileSync(join(ARTIFACTS, `${name}.txt`), text);
  for (const e of expected) {
    if (typeof e === 'string') assert.ok(text.includes(e), `screenshot ${name}: the page shows '${e}'; it shows:\n${text}`);
    else assert.match(text, e, `screenshot ${name}`);
  }
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${name}.png is a PNG`);
  assert.equal(png.subarray(12, 16).toString('latin1'), 'IHDR');
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  assert.ok(width >= 1000 && height >= 600, `${name}.png is ${width}×${height}`);
  // A blank or single-colour page compresses to a few hundred bytes; text and tables do not.
  assert.ok(png.length > 8_000, `${name}.png is only ${png.length} bytes: an empty page?`);
  return { text, png };
}
