// The Markdown people read: every Mermaid diagram is well-formed (test/docs/markdown.ts), the
// diagrams the docs promise are there (the .setls/ one names every file a new card leaves on
// disk), every link stays inside the repo and resolves to a file and heading that exist, and the
// notes that used to be stale stay fixed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { initCard } from 'setls/card';
import { anchors, codeBlocks, links, mermaidProblems, outputProblems } from './markdown.js';

const DOCS = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
const read = (f: string): string => readFileSync(f, 'utf8');

test('every Mermaid diagram in README.md and docs/ is well-formed', () => {
  let n = 0;
  for (const f of DOCS) {
    for (const b of codeBlocks(read(f)).filter((b) => b.lang === 'mermaid')) {
      n++;
      assert.deepEqual(mermaidProblems(b.code), [], `${f}:${b.line}`);
    }
  }
  assert.ok(n >= 6, `${n} diagrams`);
});

test('the checker catches what would not render', () => {
  assert.notDeepEqual(mermaidProblems('sequenceDiagram\n    participant A\n    A->>B: to nobody'), []);
  assert.notDeepEqual(mermaidProblems('sequenceDiagram\n    participant A\n    loop forever\n    A->>A: x'), []);
  assert.notDeepEqual(mermaidProblems('flowchart LR\n    a["x"] --> b["y\n'), []);
  assert.notDeepEqual(mermaidProblems('flowchart LR\n    subgraph s\n    a --> b'), []);
  assert.notDeepEqual(mermaidProblems('sequenceDiagram\n    participant A\n    A->>A: one; two'), []);
  assert.deepEqual(mermaidProblems('flowchart LR\n    a["x (y)"] -- "label" --> b\n    b --> c'), []);
});

test('the diagrams the docs promise are where people look for them', () => {
  const has = (f: string, first: string, words: RegExp): boolean =>
    codeBlocks(read(f)).some((b) => b.lang === 'mermaid' && b.code.trimStart().startsWith(first) && words.test(b.code));
  assert.ok(has('docs/apdu-protocol.md', 'sequenceDiagram', /PROCESS-EAP P1 START\+INFO[\s\S]*EAP-Success/), 'one handshake as APDUs');
  assert.ok(has('docs/architecture.md', 'sequenceDiagram', /EXPORT-SESSION[\s\S]*B's handshake/), 'the TLS-Tandem hand-off');
  assert.ok(has('docs/apdu-protocol.md', 'flowchart', /HelloVerifyRequest cookies[\s\S]*fragmentation[\s\S]*record protection/), 'the CoAP/DTLS path');
  assert.ok(has('docs/architecture.md', 'stateDiagram-v2', /peek[\s\S]*affinityWaitMs[\s\S]*down/), 'pool scheduling');
  assert.ok(has('docs/pcsc.md', 'flowchart', /pcscd[\s\S]*vpcd[\s\S]*setls card serve/), 'the pcscd/vpcd processes');
  assert.ok(has('docs/architecture.md', 'flowchart', /\.setls\/[\s\S]*card\.pin[\s\S]*ca\.crt/), 'the .setls/ folder');
});

test('every link in README.md and docs/ points inside the repo, at a file (and heading) that exists', () => {
  let n = 0;
  let withAnchor = 0;
  for (const f of DOCS) {
    for (const target of links(read(f))) {
      n++;
      assert.doesNotMatch(target, /^[a-z][a-z+.-]*:/i, `${f}: ${target} leaves the repo`);
      const [path, anchor] = target.split('#') as [string, string | undefined];
      const file = path === '' ? f : resolve(dirname(f), decodeURI(path));
      assert.ok(existsSync(file), `${f}: ${target} does not exist`);
      if (anchor === undefined) continue;
      withAnchor++;
      assert.ok(file.endsWith('.md') && statSync(file).isFile(), `${f}: ${target}: an anchor into something that is not a Markdown file`);
      assert.ok(anchors(read(file)).has(decodeURIComponent(anchor)), `${f}: ${target}: no heading with that anchor in ${path || f}`);
    }
  }
  assert.ok(n > 10, `${n} links`);
  assert.ok(withAnchor >= 3, `${withAnchor} links to headings`);
});

test('the link checker: GitHub heading anchors, and a missing one is caught', () => {
  const a = anchors('# setls API\n## HTTPS: `createServer(options, handler)`\n### Options\n### Options\n```sh\n# not a heading\n```\n## TLS-Tandem: the hand-off\n');
  assert.deepEqual([...a], ['setls-api', 'https-createserveroptions-handler', 'options', 'options-1', 'tls-tandem-the-hand-off']);
  assert.ok(!a.has('not-a-heading') && !a.has('tls-tandem'), 'only whole headings are anchors');
});

test("the output check of docs/api.md: '…' is anything, lines in order, a line not printed is reported", () => {
  const printed = 'listening on 4433\nsession failed: ERR_HOST_IN_USE\necho: hi\n';
  assert.deepEqual(outputProblems('session failed: ERR_HOST_IN_USE\necho: hi', printed), []);
  assert.deepEqual(outputProblems('listening on …\necho: hi', printed), []);
  assert.equal(outputProblems('echo: hi\nsession failed: ERR_HOST_IN_USE', printed).length, 1);
  assert.equal(outputProblems('session failed: ERR_HOST_TIMEOUT', printed).length, 1);
  assert.equal(outputProblems('echo: h', printed).length, 1, 'a whole line, not a prefix');
  assert.equal(outputProblems('listening on 4.33', printed).length, 1, 'no regular expressions');
});

test('the .setls/ diagram names every file and folder a new card leaves on disk, with its mode', async () => {
  const block = codeBlocks(read('docs/architecture.md')).find((b) => b.lang === 'mermaid' && /root\["\.setls\/"\]/.test(b.code));
  assert.ok(block, 'the .setls/ diagram');
  const label = new Map<string, string>();
  const parent = new Map<string, string>();
  for (const m of block.code.matchAll(/(\w+)\["([^"]*)"\]/g)) label.set(m[1]!, m[2]!);
  for (const m of block.code.matchAll(/^\s*(\w+)(?:\["[^"]*"\])?\s*-->\s*(\w+)/gm)) parent.set(m[2]!, m[1]!);
  const pathOf = (id: string): string => {
    const name = /^[^\s:(]+/.exec(label.get(id) ?? '')![0];
    const up = parent.get(id);
    return up === undefined ? '' : pathOf(up) + name;
  };
  const drawn = new Map([...label.keys()].map((id) => [pathOf(id), label.get(id)!]));
  const root = mkdtempSync(join(tmpdir(), 'setls-docs-layout-'));
  try {
    await initCard({ cardDir: join(root, '.setls/card') });
    const walk = (d: string, rel: string): string[] =>
      readdirSync(d).flatMap((e) => (statSync(join(d, e)).isDirectory() ? [`${rel}${e}/`, ...walk(join(d, e), `${rel}${e}/`)] : [`${rel}${e}`]));
    const made = walk(join(root, '.setls'), '');
    assert.ok(made.length >= 10, made.join(' '));
    for (const p of made) {
      assert.ok(drawn.has(p), `initCard made .setls/${p}; the diagram does not show it (it shows: ${[...drawn.keys()].join(', ')})`);
      const mode = /\((0[0-7]{3})\)/.exec(drawn.get(p)!)?.[1];
      if (mode) assert.equal((statSync(join(root, '.setls', p)).mode & 0o777).toString(8).padStart(4, '0'), mode, `.setls/${p}`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('stale notes stay fixed: logical channels are done; tls/ is TLS 1.3, 1.2 and DTLS 1.2', () => {
  const readme = read('README.md');
  assert.doesNotMatch(readme, /Open work[^.]*logical channels/);
  assert.match(readme, /`src\/tls` the sans-I\/O TLS 1\.3\/1\.2\/DTLS 1\.2 engine/);
  for (const f of DOCS) {
    const text = read(f);
    assert.doesNotMatch(text, /channel 0 only until the card has MANAGE CHANNEL/, f);
    assert.doesNotMatch(text, /in-process today; vpcd \/ PC\/SC readers later/, f);
    assert.doesNotMatch(text, /CardTransport: in-process \| \(vpcd, PC\/SC\)/, f);
  }
});
