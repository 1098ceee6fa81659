// The Markdown people read: every Mermaid diagram is well-formed (test/docs/markdown.ts), the
// diagrams the docs promise are there, every link stays inside the repo and resolves, and the notes
// that used to be stale stay fixed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { codeBlocks, links, mermaidProblems } from './markdown.js';

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

test('every link in README.md and docs/ points inside the repo, at a file that exists', () => {
  let n = 0;
  for (const f of DOCS) {
    for (const target of links(read(f))) {
      n++;
      assert.doesNotMatch(target, /^[a-z][a-z+.-]*:/i, `${f}: ${target} leaves the repo`);
      const path = target.split('#')[0]!;
      if (path === '') continue; // an anchor in the same file
      assert.ok(existsSync(resolve(dirname(f), path)), `${f}: ${target} does not exist`);
    }
  }
  assert.ok(n > 10, `${n} links`);
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
