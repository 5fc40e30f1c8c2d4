// tiktoken_ref.js — reference encoder for test_tokenizer_random.c: js-tiktoken
// (the npm package, a pure-JS port of OpenAI's tiktoken) encodes texts with the
// ranks read from a .tiktoken file and pat_str from its .meta.json.
//
//   node tiktoken_ref.js JSTIKTOKEN_DIR RANKS.tiktoken LINES [--special] [--extra JSON]
//       LINES: one JSON string per line; prints one line of ids per input line.
//       --special: special tokens in the text are encoded as such ("all"),
//       otherwise as plain text. --extra: {"<|im_start|>":100264,...} registers
//       more special tokens (Phi-4 / Phi-4-mini chat tokens).
//   node tiktoken_ref.js JSTIKTOKEN_DIR RANKS.tiktoken --check-bundled NAME
//       prints "same" if js-tiktoken's bundled NAME ranks and pat_str equal the file's.
//   node tiktoken_ref.js JSTIKTOKEN_DIR RANKS.tiktoken LINES --multi NAME EXTRA
//       one process for everything (loading ranks is the slow part): a line
//       "#bundled same|differ N", then four blocks of id lines, each ended by
//       "#end": plain text, specials, and both again with EXTRA registered.
"use strict";
const fs = require("fs");
const path = require("path");

const [dir, ranksPath, ...rest] = process.argv.slice(2);
const { Tiktoken } = require(path.join(dir, "node_modules", "js-tiktoken", "dist", "lite.cjs"));

function loadFile() {
  const lines = fs.readFileSync(ranksPath, "latin1").split("\n").filter(Boolean);
  const ranks = lines.map((l) => {
    const [b64, r] = l.split(" ");
    return [b64, Number.parseInt(r, 10)];
  });
  ranks.sort((a, b) => a[1] - b[1]);
  // js-tiktoken's compressed form: "! OFFSET tok tok ..." per run of consecutive ranks
  const out = [];
  let cur = null;
  for (const [b64, r] of ranks) {
    if (!cur || r !== cur.next) {
      cur = { off: r, toks: [], next: r };
      out.push(cur);
    }
    cur.toks.push(b64);
    cur.next = r + 1;
  }
  const metaPath = ranksPath.replace(/\.tiktoken$/, ".meta.json");
  const meta = JSON.parse(fs.readFileSync(metaPath, "utf8"));
  return {
    pat_str: meta.pat_str,
    special_tokens: meta.special_tokens || {},
    bpe_ranks: out.map((c) => "! " + c.off + " " + c.toks.join(" ")).join("\n"),
    _map: new Map(ranks),
  };
}

function checkBundled(file, name) {
  const b = require(path.join(dir, "node_modules", "js-tiktoken", "dist", "ranks", name + ".cjs"));
  const bundled = b.default || b;
  const bm = new Map();
  for (const line of bundled.bpe_ranks.split("\n").filter(Boolean)) {
    const [, off, ...toks] = line.split(" ");
    toks.forEach((t, i) => bm.set(t, Number.parseInt(off, 10) + i));
  }
  let diff = bm.size !== file._map.size ? 1 : 0;
  for (const [k, v] of file._map) if (bm.get(k) !== v) diff++;
  if (bundled.pat_str !== file.pat_str) diff++;
  return diff === 0 ? "same" : "differ " + diff;
}

const file = loadFile();
if (rest[0] === "--check-bundled") {
  console.log(checkBundled(file, rest[1]));
  process.exit(0);
}
if (rest[1] === "--multi") {
  const out = ["#bundled " + checkBundled(file, rest[2])];
  const extra = JSON.parse(rest[3]);
  delete file._map;
  const texts = fs.readFileSync(rest[0], "utf8").split("\n");
  if (texts.length && texts[texts.length - 1] === "") texts.pop();
  const strs = texts.map((l) => JSON.parse(l));
  for (const enc of [new Tiktoken(file), new Tiktoken(file, extra)]) {
    for (const special of [false, true]) {
      for (const s of strs) out.push((special ? enc.encode(s, "all") : enc.encode(s, [], [])).join(" "));
      out.push("#end");
    }
  }
  // no process.exit here: it would cut a large write to a pipe short
  process.stdout.write(out.join("\n") + "\n");
} else {
  const linesPath = rest[0];
  let special = false;
  let extra = {};
  for (let i = 1; i < rest.length; i++) {
    if (rest[i] === "--special") special = true;
    else if (rest[i] === "--extra") extra = JSON.parse(rest[++i]);
  }
  delete file._map;
  const enc = new Tiktoken(file, extra);
  const texts = fs.readFileSync(linesPath, "utf8").split("\n");
  if (texts.length && texts[texts.length - 1] === "") texts.pop();
  const out = [];
  for (const l of texts) {
    const s = JSON.parse(l);
    out.push((special ? enc.encode(s, "all") : enc.encode(s, [], [])).join(" "));
  }
  process.stdout.write(out.join("\n") + "\n");
}
