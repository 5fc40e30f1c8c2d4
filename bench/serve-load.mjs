// serve-load.mjs — the load client of bench/serve-load.sh: raw streamed
// requests (fetch + SSE) against a running `phiq serve`, timing each chunk.
//   node serve-load.mjs URL solo|parallel|load [N] [CONCURRENCY] [MAX_TOKENS]
// Prints one JSON line.
const [url, mode, nArg, cArg, mtArg] = process.argv.slice(2);
const MAXTOK = Number(mtArg || 64);
const QUESTIONS = ['Explain the water cycle.', 'Write a poem about the sea.', 'What is a prime number?',
  'Describe a cat.', 'How do airplanes fly?', 'Tell me a story about a dragon.', 'Why is the sky blue?',
  'List some fruits.'];

async function stream(i) {
  const t0 = performance.now();
  const r = await fetch(url + '/v1/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: QUESTIONS[i % QUESTIONS.length] }], stream: true,
      stream_options: { include_usage: true }, temperature: 0, max_tokens: MAXTOK }),
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const times = [];
  let usage = null, buf = '';
  const dec = new TextDecoder();
  for await (const part of r.body) {
    buf += dec.decode(part, { stream: true });
    let k;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6));
      if (j.usage) usage = j.usage;
      if (j.choices?.[0]?.delta?.content) times.push(performance.now());
    }
  }
  return { t0, times, tokens: usage ? usage.completion_tokens : times.length };
}

const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))] : null; };
const round = (x) => (x === null ? null : Math.round(x * 100) / 100);

if (mode === 'solo' || mode === 'parallel') {
  const n = mode === 'solo' ? 1 : Number(nArg || 8);
  const rs = await Promise.all(Array.from({ length: n }, (_, i) => stream(i)));
  const firstAll = Math.min(...rs.map((r) => r.times[0])), lastAll = Math.max(...rs.map((r) => r.times[r.times.length - 1]));
  const firstLast = Math.max(...rs.map((r) => r.times[0]));
  const tok = rs.reduce((a, r) => a + r.tokens, 0);
  // decode rate: the tokens after each stream's first, over the time from the last first token to the end
  const dec = rs.reduce((a, r) => a + r.tokens - 1, 0) / ((lastAll - firstLast) / 1000);
  console.log(JSON.stringify({ streams: n, tokens: tok, wall_s: round((lastAll - Math.min(...rs.map((r) => r.t0))) / 1000),
    aggregate_decode_tok_s: round(dec), overall_tok_s: round(tok / ((lastAll - firstAll) / 1000)) }));
} else {
  const total = Number(nArg || 64), conc = Number(cArg || 8);
  let next = 0;
  const ttft = [], itl = [];
  let tokens = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < total) {
      const r = await stream(next++);
      ttft.push(r.times[0] - r.t0);
      for (let i = 1; i < r.times.length; i++) itl.push(r.times[i] - r.times[i - 1]);
      tokens += r.tokens;
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ requests: total, concurrency: conc, tokens, wall_s: round(wall), tok_s: round(tokens / wall),
    ttft_ms: { p50: round(pct(ttft, 50)), p90: round(pct(ttft, 90)), p99: round(pct(ttft, 99)) },
    itl_ms: { p50: round(pct(itl, 50)), p90: round(pct(itl, 90)), p99: round(pct(itl, 99)) } }));
}
