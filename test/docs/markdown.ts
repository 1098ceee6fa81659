/**
 * Reading the repo's Markdown for tests: fenced code blocks (language, text, line), markdown links,
 * and a structural check of Mermaid diagrams (the subset the docs use: sequenceDiagram, flowchart,
 * stateDiagram-v2) so a diagram that would not render fails here, where people read it later;
 * GitHub's heading anchors; and the check of an `output` block against what a program printed.
 * Imports nothing of the project.
 */

export interface CodeBlock {
  readonly lang: string;
  readonly code: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
}

/** Fenced blocks (``` or ~~~, at any indentation), in order. */
export function codeBlocks(md: string): CodeBlock[] {
  return split(md).blocks;
}

/** The page without its fenced blocks (their lines left empty, so line numbers stay). */
function prose(md: string): string {
  return split(md).prose;
}

function split(md: string): { blocks: CodeBlock[]; prose: string } {
  const blocks: CodeBlock[] = [];
  const lines = md.split('\n');
  const text = [...lines];
  for (let i = 0; i < lines.length; i++) {
    const open = /^([ \t]*)(```|~~~)[ \t]*([\w+-]*)/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      if (lines[j]!.trim() === fence) break;
      body.push(lines[j]!.startsWith(indent!) ? lines[j]!.slice(indent!.length) : lines[j]!);
    }
    blocks.push({ lang: lang ?? '', code: body.join('\n'), line: i + 1 });
    for (let k = i; k <= j && k < lines.length; k++) text[k] = '';
    i = j;
  }
  return { blocks, prose: text.join('\n') };
}

/**
 * The anchors GitHub gives the headings of a page: the heading's text lower-cased, inline-code
 * backticks and punctuation other than '-' and '_' dropped, each space a '-'; a repeated slug gets
 * -1, -2 … Headings inside code blocks are not headings.
 */
export function anchors(md: string): Set<string> {
  const page = prose(md);
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of page.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const text = m[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const slug = text.toLowerCase().replace(/[^\p{L}\p{N}\p{M} _-]/gu, '').replace(/ /g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

/** Markdown links `[text](target)` outside code blocks and inline code. */
export function links(md: string): string[] {
  const page = prose(md).replace(/`[^`\n]*`/g, '');
  return [...page.matchAll(/\[[^\]\n]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
}

/**
 * Lines of `shown` (an output block) that do not match, in order, lines of `printed`. A shown line
 * matches a printed line (both trimmed) in full; `…` in it stands for any text.
 */
export function outputProblems(shown: string, printed: string): string[] {
  const want = shown.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const got = printed.split('\n').map((l) => l.trim());
  const problems: string[] = [];
  let at = 0;
  for (const w of want) {
    const re = new RegExp(`^${w.split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    const k = got.findIndex((g, j) => j >= at && re.test(g));
    if (k < 0) problems.push(`not printed (after line ${at + 1}): ${w}`);
    else at = k + 1;
  }
  return problems;
}

/** What is wrong with a Mermaid diagram (empty: nothing found). */
export function mermaidProblems(code: string): string[] {
  const lines = code.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('%%'));
  const head = lines[0] ?? '';
  const problems: string[] = [];
  const body = lines.slice(1);
  for (const l of body) {
    if (/;/.test(l.replace(/"[^"]*"/g, ''))) problems.push(`';' ends a statement in Mermaid: ${l}`);
    if ((l.match(/"/g) ?? []).length % 2) problems.push(`unbalanced quotes: ${l}`);
  }
  if (head === 'sequenceDiagram') {
    const declared = new Set<string>();
    let depth = 0;
    for (const l of body) {
      let m: RegExpExecArray | null;
      if ((m = /^(participant|actor) (\w+)( as .+)?$/.exec(l))) declared.add(m[2]!);
      else if (l === 'autonumber') continue;
      else if ((m = /^(\w+)\s*(->>|-->>|->|-->|-x|--x|-\)|--\))\s*[+-]?(\w+)\s*:\s*\S.*$/.exec(l))) {
        for (const who of [m[1]!, m[3]!]) if (!declared.has(who)) problems.push(`undeclared participant ${who}: ${l}`);
      } else if ((m = /^Note (over|left of|right of) (\w+)(,\s*(\w+))?\s*:\s*\S.*$/.exec(l))) {
        for (const who of [m[2]!, m[4]].filter((x): x is string => x !== undefined)) if (!declared.has(who)) problems.push(`undeclared participant ${who}: ${l}`);
      } else if (/^(loop|alt|opt|par|critical|break|rect)\b/.test(l)) depth++;
      else if (/^(else|and|option)\b/.test(l)) {
        if (depth === 0) problems.push(`'${l}' outside a block`);
      } else if (l === 'end') {
        if (--depth < 0) problems.push("'end' without a block");
      } else problems.push(`not a sequence diagram statement: ${l}`);
    }
    if (depth !== 0) problems.push('a block is not closed with end');
  } else if (/^(flowchart|graph) (LR|RL|TD|TB|BT)$/.test(head)) {
    let depth = 0;
    const node = String.raw`\w+(\["[^"]*"\]|\("[^"]*"\)|\{"[^"]*"\}|\[\[?[^\]"]*\]\]?|\([^)"]*\))?`;
    const edge = String.raw`(-->|---|-\.->|==>|--\s+"[^"]*"\s+-->|-- "[^"]*" -->|-->\|[^|]*\|)`;
    const nodeRe = new RegExp(`^${node}$`);
    const edgeRe = new RegExp(`^${node}\\s*${edge}\\s*${node}$`);
    for (const l of body) {
      if (/^subgraph \w+(\["[^"]*"\])?$/.test(l)) depth++;
      else if (l === 'end') {
        if (--depth < 0) problems.push("'end' without a subgraph");
      } else if (/^direction (LR|RL|TD|TB|BT)$/.test(l) || /^(classDef|class|style|linkStyle|click) /.test(l)) continue;
      else if (!edgeRe.test(l) && !nodeRe.test(l)) problems.push(`not a flowchart node or edge: ${l}`);
    }
    if (depth !== 0) problems.push('a subgraph is not closed with end');
  } else if (head === 'stateDiagram-v2') {
    let inNote = false;
    for (const l of body) {
      if (inNote) {
        if (l === 'end note') inNote = false;
        continue;
      }
      if (/^note (left|right) of \w+$/.test(l)) inNote = true;
      else if (/^note (left|right) of \w+\s*:\s*\S/.test(l)) continue;
      else if (/^(\[\*\]|\w+) --> (\[\*\]|\w+)(\s*:\s*\S.*)?$/.test(l)) continue;
      else if (/^state "[^"]+" as \w+$/.test(l) || /^\w+\s*:\s*\S.*$/.test(l) || /^direction (LR|TB)$/.test(l)) continue;
      else problems.push(`not a state diagram statement: ${l}`);
    }
    if (inNote) problems.push('a note is not closed with end note');
  } else {
    problems.push(`unknown or unchecked diagram type: ${head}`);
  }
  return problems;
}
