#!/usr/bin/env node
// The documentation's check (`make docs-check`, the first step of `make test`).
// Plain Node.js (20 or later), no dependencies. It fails, with `file:line: ...`, when
//   1. a relative link or image in README.md, docs/*.md or docs/book/src/**/*.md points
//      at a file that does not exist (http:, https:, mailto: and other schemes, and pure
//      `#anchor` links, are not checked; `#anchor` is cut off a relative link before the
//      check; links inside fenced code blocks and inline code do not count);
//   2. a page under docs/book/src/ is not listed in SUMMARY.md, or SUMMARY.md lists a
//      page that does not exist;
//   3. a key of the config file, a field of a struct that derives Deserialize in
//      host/src/config/raw.rs, does not appear as a word in the configuration page.
// On success it prints one line: the files, links and keys it checked.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BOOK_SRC = 'docs/book/src';
const SUMMARY = `${BOOK_SRC}/SUMMARY.md`;
const CONFIG_PAGE = `${BOOK_SRC}/operating/configuration.md`;
const RAW_CONFIG = 'host/src/config/raw.rs';

const problems = [];
const problem = (file, line, message) => problems.push(`${file}:${line}: ${message}`);
const abs = (rel) => join(ROOT, rel);
const rel = (path) => relative(ROOT, path).split(sep).join('/');
const read = (relPath) => readFileSync(abs(relPath), 'utf8');

/** Markdown files under `dir` (repository-relative), recursively when `deep`. */
function markdownFiles(dir, deep) {
  if (!existsSync(abs(dir))) return [];
  const out = [];
  for (const name of readdirSync(abs(dir)).sort()) {
    const path = `${dir}/${name}`;
    const isDir = statSync(abs(path)).isDirectory();
    if (isDir && deep) out.push(...markdownFiles(path, deep));
    else if (!isDir && name.endsWith('.md')) out.push(path);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Markdown links

/**
 * The text with what is not prose blanked out, line breaks kept (so offsets still give
 * line numbers): fenced code blocks, inline code spans (which may run over several lines
 * of a paragraph) and HTML comments.
 */
function prose(text) {
  const lines = text.split('\n');
  let fence = null;
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(/^\s*(`{3,}|~{3,})/);
    if (fence) {
      if (open && open[1][0] === fence[0] && open[1].length >= fence.length && lines[i].trim() === open[1]) fence = null;
      lines[i] = '';
    } else if (open) {
      fence = open[1];
      lines[i] = '';
    }
  }
  const blank = (s) => s.replace(/[^\n]/g, ' ');
  // Code spans pair a run of N backticks with the next run of exactly N, within a paragraph.
  const paragraphs = lines.join('\n').split(/(\n[ \t]*\n)/);
  const masked = paragraphs.map((para) => {
    let out = '';
    let at = 0;
    const runs = [...para.matchAll(/`+/g)];
    for (let r = 0; r < runs.length; r++) {
      const open = runs[r];
      if (open.index < at) continue;
      const close = runs.slice(r + 1).find((c) => c[0].length === open[0].length);
      if (!close) continue;
      out += para.slice(at, open.index) + blank(para.slice(open.index, close.index + close[0].length));
      at = close.index + close[0].length;
      r = runs.indexOf(close);
    }
    return out + para.slice(at);
  });
  return masked.join('').replace(/<!--[\s\S]*?-->/g, blank);
}

const INLINE_LINK =
  /(!?)\[((?:[^[\]]|\[[^[\]]*\])*)\]\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/g;
const REFERENCE_DEFINITION = /^ {0,3}\[[^\]\n]+\]:[ \t]*(<[^>\n]*>|\S+)/gm;
const HTML_LINK = /<(?:img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*"([^"]*)"/gi;

/** Every link and image target in a Markdown text, with its line: `{ line, target }`. */
function links(text) {
  const masked = prose(text);
  const lineAt = (offset) => masked.slice(0, offset).split('\n').length;
  const found = [];
  const inline = (chunk, base) => {
    for (const m of chunk.matchAll(INLINE_LINK)) {
      found.push({ line: lineAt(base + m.index), target: m[3] });
      inline(m[2], base + m.index + 1 + m[1].length); // an image inside a link's text
    }
  };
  inline(masked, 0);
  for (const m of masked.matchAll(REFERENCE_DEFINITION)) found.push({ line: lineAt(m.index), target: m[1] });
  for (const m of masked.matchAll(HTML_LINK)) found.push({ line: lineAt(m.index), target: m[1] });
  return found.map(({ line, target }) => ({ line, target: target.replace(/^<(.*)>$/, '$1').trim() }));
}

/** Whether a target leaves the repository's files alone: a URL of any scheme, or `#anchor`. */
const notAFile = (target) => target.startsWith('#') || target.startsWith('//') || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(target);

/** The repository path a relative target names from `file`, or a reason it names none. */
function resolveTarget(file, target) {
  let path = target.replace(/[#?].*$/, '');
  try {
    path = decodeURIComponent(path);
  } catch {
    return { error: `\`${target}\` is not a valid link (bad percent-encoding)` };
  }
  const full = path.startsWith('/') ? join(ROOT, path) : resolve(dirname(abs(file)), path);
  if (full !== ROOT && !full.startsWith(ROOT + sep)) return { error: `\`${target}\` points outside the repository` };
  return { full };
}

let linksChecked = 0;

function checkLinks(file) {
  for (const { line, target } of links(read(file))) {
    if (notAFile(target)) continue;
    linksChecked++;
    if (target === '') {
      problem(file, line, 'a link with an empty target');
      continue;
    }
    const { full, error } = resolveTarget(file, target);
    if (error) problem(file, line, error);
    else if (!existsSync(full)) problem(file, line, `\`${target}\` points at ${rel(full)}, which does not exist`);
  }
}

// ---------------------------------------------------------------------------
// SUMMARY.md and the book's pages

function checkSummary(bookPages) {
  if (!existsSync(abs(SUMMARY))) {
    problem(SUMMARY, 1, 'missing: the book needs its table of contents');
    return 0;
  }
  const listed = new Map(); // repository path -> line
  for (const { line, target } of links(read(SUMMARY))) {
    if (target === '') continue; // a draft chapter: listed, no page yet
    linksChecked++;
    if (notAFile(target)) {
      problem(SUMMARY, line, `\`${target}\` is not a page of the book`);
      continue;
    }
    const { full, error } = resolveTarget(SUMMARY, target);
    if (error) {
      problem(SUMMARY, line, error);
      continue;
    }
    const page = rel(full);
    if (!page.startsWith(`${BOOK_SRC}/`) || !page.endsWith('.md')) {
      problem(SUMMARY, line, `\`${target}\` is not a Markdown page under ${BOOK_SRC}/`);
    } else if (!existsSync(full)) {
      problem(SUMMARY, line, `lists \`${target}\`, which does not exist (${page})`);
    } else if (listed.has(page)) {
      problem(SUMMARY, line, `lists \`${target}\` again (first at line ${listed.get(page)})`);
    } else {
      listed.set(page, line);
    }
  }
  for (const page of bookPages) {
    if (page !== SUMMARY && !listed.has(page)) problem(page, 1, `not listed in ${SUMMARY}`);
  }
  return listed.size;
}

// ---------------------------------------------------------------------------
// Config keys: the fields of the Deserialize structs of raw.rs

const CASES = {
  lowercase: (s) => s.toLowerCase(),
  UPPERCASE: (s) => s.toUpperCase(),
  snake_case: (s) => s,
  SCREAMING_SNAKE_CASE: (s) => s.toUpperCase(),
  'kebab-case': (s) => s.replaceAll('_', '-'),
  'SCREAMING-KEBAB-CASE': (s) => s.replaceAll('_', '-').toUpperCase(),
  camelCase: (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase()),
  PascalCase: (s) => s.replace(/(?:^|_)([a-z0-9])/g, (_, c) => c.toUpperCase()),
};

/** The `serde(...)` parts of a list of attribute texts, joined. */
const serdeOf = (attrs) => attrs.filter((a) => /^#\[\s*serde\s*\(/.test(a)).join(' ');

/** How many more `{` than `}` a line of Rust opens, outside string literals. */
function braceBalance(line) {
  let balance = 0;
  const code = line
    .replace(/r(#*)"[\s\S]*?"\1/g, '""')
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/'(?:[^'\\]|\\.)'/g, "''")
    .replace(/\/\/.*$/, '');
  for (const c of code) balance += c === '{' ? 1 : c === '}' ? -1 : 0;
  return balance;
}

/** `[{ key, line, struct }]`: every key a config file may hold, as raw.rs declares them. */
function configKeys(text) {
  const lines = text.split('\n');
  const keys = [];
  let structs = 0;
  let attrs = []; // attributes waiting for the item (or field) they belong to
  let pending = null; // an attribute still open over several lines
  let struct = null; // { name, renameAll, depth, opened }

  for (let n = 0; n < lines.length; n++) {
    const line = lines[n];
    const t = line.trim();

    if (pending !== null) {
      pending += ' ' + t;
      if ((pending.match(/\[/g) || []).length <= (pending.match(/\]/g) || []).length) {
        attrs.push(pending);
        pending = null;
      }
      continue;
    }
    if (t === '' || t.startsWith('//')) continue;
    if (t.startsWith('#[')) {
      if ((t.match(/\[/g) || []).length <= (t.match(/\]/g) || []).length) attrs.push(t);
      else pending = t;
      continue;
    }

    if (struct) {
      if (!struct.opened) {
        if (t.startsWith('{')) struct.opened = true;
        else { struct = null; attrs = []; continue; }
      }
      const depthBefore = struct.depth;
      if (depthBefore === 1) {
        const field = t.match(/^(?:pub(?:\s*\([^)]*\))?\s+)?(?:r#)?([A-Za-z_][A-Za-z0-9_]*)\s*:(?!:)/);
        if (field) {
          const serde = serdeOf(attrs);
          if (!/\b(?:skip|skip_deserializing|flatten)\b(?!_)/.test(serde)) {
            const renamed =
              serde.match(/\brename\s*=\s*"([^"]+)"/) || serde.match(/\brename\s*\([^)]*\bdeserialize\s*=\s*"([^"]+)"/);
            const key = renamed ? renamed[1] : (CASES[struct.renameAll] || CASES.snake_case)(field[1]);
            keys.push({ key, line: n + 1, struct: struct.name });
            for (const alias of serde.matchAll(/\balias\s*=\s*"([^"]+)"/g)) {
              keys.push({ key: alias[1], line: n + 1, struct: struct.name });
            }
          }
        }
      }
      attrs = [];
      struct.depth += braceBalance(t);
      if (struct.depth <= 0 && struct.opened) struct = null;
      continue;
    }

    const item = t.match(/^(?:pub(?:\s*\([^)]*\))?\s+)?struct\s+([A-Za-z_][A-Za-z0-9_]*)/);
    if (item) {
      const derives = attrs.some((a) => /^#\[\s*derive\s*\([^)]*\bDeserialize\b/.test(a));
      const rest = t.slice(item[0].length);
      const braced = /^\s*(?:<[^{]*>)?\s*(?:where\b[^{]*)?\{/.test(rest) || (!/[;(]/.test(rest) && !rest.includes('{'));
      if (derives && braced) {
        structs++;
        const serde = serdeOf(attrs);
        const all =
          serde.match(/\brename_all\s*=\s*"([^"]+)"/) || serde.match(/\brename_all\s*\([^)]*\bdeserialize\s*=\s*"([^"]+)"/);
        struct = { name: item[1], renameAll: all ? all[1] : 'snake_case', depth: 0, opened: false };
        if (rest.includes('{')) {
          struct.opened = true;
          struct.depth = braceBalance(rest);
          if (struct.depth <= 0) struct = null; // `struct X {}`
        }
      }
      attrs = [];
      continue;
    }
    attrs = [];
  }
  return { keys, structs };
}

function checkConfigKeys() {
  if (!existsSync(abs(RAW_CONFIG))) {
    problem(RAW_CONFIG, 1, 'missing: the config keys are read from it');
    return 0;
  }
  const { keys, structs } = configKeys(read(RAW_CONFIG));
  if (keys.length === 0) {
    problem(RAW_CONFIG, 1, `no config keys found (${structs} Deserialize structs): docs/check.mjs no longer reads this file right`);
    return 0;
  }
  if (!existsSync(abs(CONFIG_PAGE))) {
    problem(CONFIG_PAGE, 1, `missing: the configuration reference, where every key of ${RAW_CONFIG} must appear`);
    return keys.length;
  }
  const page = read(CONFIG_PAGE);
  const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const { key, line, struct } of keys) {
    if (!new RegExp(`(?<![A-Za-z0-9_-])${escape(key)}(?![A-Za-z0-9_-])`).test(page)) {
      problem(RAW_CONFIG, line, `config key \`${key}\` (${struct}) does not appear in ${CONFIG_PAGE}`);
    }
  }
  return keys.length;
}

// ---------------------------------------------------------------------------

const bookPages = markdownFiles(BOOK_SRC, true);
const files = ['README.md', ...markdownFiles('docs', false), ...bookPages.filter((p) => p !== SUMMARY)];
for (const file of files) {
  if (existsSync(abs(file))) checkLinks(file);
  else problem(file, 1, 'missing');
}
const listed = checkSummary(bookPages);
const keys = checkConfigKeys();

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`docs/check.mjs: ${problems.length} problem(s) in the documentation`);
  process.exit(1);
}
console.log(
  `docs/check.mjs: ok: ${files.length + 1} Markdown files (${listed} book pages, all listed in SUMMARY.md), ` +
    `${linksChecked} relative links checked, ${keys} config keys of ${RAW_CONFIG} found in ${CONFIG_PAGE}`,
);
