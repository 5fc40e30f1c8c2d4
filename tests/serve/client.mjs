// client.mjs — drives a running `phiq serve` for tests/test_serve.c with the
// official OpenAI JavaScript client (npm `openai`) and raw HTTP where the
// client hides the wire (SSE framing, error statuses). One case per run:
//   node client.mjs CASE
// env: PHIQ_SERVE_URL (http://127.0.0.1:PORT), PHIQ_SERVE_KEY, PHIQ_BIN,
// PHIQ_MODEL (what the server serves), PHIQ_SERVE_PID, PHIQ_NODE_MODULES.
// Expected texts come from `phiq run --temp 0 --json`, the CLI the server
// must agree with. Exit 0 = pass; otherwise the first failure is printed.
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import net from 'node:net';

const require = createRequire(process.env.PHIQ_NODE_MODULES + '/');
const OpenAI = require('openai').default ?? require('openai');
const URL_ = process.env.PHIQ_SERVE_URL, KEY = process.env.PHIQ_SERVE_KEY;
// Node's own fetch (undici) as the transport, as openai v5 uses by default:
// openai v4's default node-fetch 2.7 with its keep-alive agent reports
// 'Premature close' on every complete chunked stream under Node 18 (Debian
// bookworm's nodejs), whatever the server (node-fetch issue #1767; a Node
// http.Server streaming SSE fails the same way).
const transport = typeof globalThis.fetch === 'function' ? { fetch: globalThis.fetch } : {};
const client = new OpenAI({ baseURL: URL_ + '/v1', apiKey: KEY, maxRetries: 0, timeout: 120000, ...transport });

function fail(msg) { throw new Error(msg); }
function eq(a, b, what) {
  if (JSON.stringify(a) !== JSON.stringify(b)) fail(`${what}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`);
}
function truthy(v, what) { if (!v) fail(what); }

// phiq run's greedy answer: {text, prompt_ids, ids, stop}
function runCli(user, n, { system, chat = true } = {}) {
  const args = ['run', process.env.PHIQ_MODEL, '-p', user, '-n', String(n), '--temp', '0', '--json', '-t', '1'];
  if (chat) args.push('--chat');
  if (system) args.push('--system', system);
  return JSON.parse(execFileSync(process.env.PHIQ_BIN, args, { encoding: 'utf8' }));
}

async function post(path, body, headers = {}) {
  const r = await fetch(URL_ + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* SSE or plain */ }
  return { status: r.status, text, json };
}

async function metrics() {
  const t = await (await fetch(URL_ + '/metrics')).text();
  const m = {};
  for (const line of t.split('\n')) {
    const k = line.match(/^(\w+)(\{[^}]*\})? ([-0-9.e+]+)$/);
    if (k) m[k[1] + (k[2] || '')] = Number(k[3]);
  }
  return m;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitIdle(what) {
  for (let i = 0; i < 100; i++) {
    const m = await metrics();
    if (m.phiq_slots_busy === 0 && m.phiq_queue_depth === 0) return m;
    await sleep(50);
  }
  fail(`${what}: slots still busy after 5 s`);
}

const QUESTIONS = [
  'Who created the heaven and the earth?', 'What did God say on the first day?', 'Who was the first man?',
  'Tell me about Noah.', 'Where is the garden of Eden?', 'Who led the people out of Egypt?',
  'What is the first commandment?', 'Who is the shepherd?',
];

async function streamText(messages, extra = {}) {
  const s = await client.chat.completions.create({ model: 'x', messages, stream: true, ...extra });
  let text = '', finish = null, usage = null;
  for await (const ch of s) {
    if (ch.usage) usage = ch.usage;
    if (!ch.choices.length) continue;
    text += ch.choices[0].delta?.content ?? '';
    if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
  }
  return { text, finish, usage };
}

const cases = {
  async chat() {
    // Both CLI answers first: a CLI run between requests can outlast the server's --timeout 3 idle close
    // under ASan, and the client then reuses the closed keep-alive socket (ECONNRESET).
    const pairs = [[null, QUESTIONS[0]], ['You are a preacher.', QUESTIONS[3]]];
    const wants = pairs.map(([system, user]) => runCli(user, 24, { system }));
    for (const [i, [system, user]] of pairs.entries()) {
      const want = wants[i];
      const messages = system ? [{ role: 'system', content: system }, { role: 'user', content: user }] : [{ role: 'user', content: user }];
      const r = await client.chat.completions.create({ model: 'x', messages, temperature: 0, max_tokens: 24 });
      eq(r.object, 'chat.completion', 'object');
      eq(r.choices[0].message.role, 'assistant', 'role');
      eq(r.choices[0].message.content, want.text, `non-streamed text for "${user}"`);
      eq(r.choices[0].finish_reason, want.stop === 'eos' ? 'stop' : 'length', 'finish_reason');
      eq(r.usage.prompt_tokens, want.prompt_ids.length, 'usage.prompt_tokens = phiq tokenizer count');
      eq(r.usage.completion_tokens, want.ids.length, 'usage.completion_tokens');
      eq(r.usage.total_tokens, want.prompt_ids.length + want.ids.length, 'usage.total_tokens');
      const s = await streamText(messages, { temperature: 0, max_tokens: 24, stream_options: { include_usage: true } });
      eq(s.text, want.text, `streamed text for "${user}"`);
      eq(s.finish, want.stop === 'eos' ? 'stop' : 'length', 'streamed finish_reason');
      eq(s.usage.prompt_tokens, want.prompt_ids.length, 'streamed usage.prompt_tokens');
      eq(s.usage.completion_tokens, want.ids.length, 'streamed usage.completion_tokens');
    }
    const models = await client.models.list();
    eq(models.data.length, 1, '/v1/models entries');
    truthy(models.data[0].id, '/v1/models id');
    const h = await fetch(URL_ + '/health');
    eq(h.status, 200, '/health status');
    eq((await h.json()).status, 'ok', '/health body');
  },

  async sse() { // the wire format the client hides
    const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: QUESTIONS[1] }], temperature: 0,
      max_tokens: 6, stream: true, stream_options: { include_usage: true } });
    eq(r.status, 200, 'status');
    const events = r.text.split('\n\n').filter((e) => e.length);
    for (const e of events) truthy(e.startsWith('data: '), `every event is "data: ...": ${e}`);
    eq(events[events.length - 1], 'data: [DONE]', 'last event');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    eq(chunks[0].choices[0].delta.role, 'assistant', 'first chunk carries the role');
    for (const c of chunks) eq(c.object, 'chat.completion.chunk', 'chunk object');
    const ids = new Set(chunks.map((c) => c.id));
    eq(ids.size, 1, 'one id per stream');
    const usage = chunks[chunks.length - 1];
    eq(usage.choices, [], 'usage chunk has no choices');
    eq(usage.usage.completion_tokens, 6, 'usage chunk completion_tokens');
    eq(chunks[chunks.length - 2].choices[0].finish_reason, 'length', 'finish chunk');
  },

  async completions() {
    const prompt = 'In the beginning God created';
    const want = runCli(prompt, 16, { chat: false });
    const r = await client.completions.create({ model: 'x', prompt, temperature: 0, max_tokens: 16 });
    eq(r.object, 'text_completion', 'object');
    eq(r.choices[0].text, want.text, 'completion text');
    eq(r.usage.prompt_tokens, want.prompt_ids.length, 'usage.prompt_tokens');
    const s = await client.completions.create({ model: 'x', prompt, temperature: 0, max_tokens: 16, stream: true });
    let text = '';
    for await (const ch of s) text += ch.choices[0]?.text ?? '';
    eq(text, want.text, 'streamed completion text');
  },

  async stop() {
    const user = QUESTIONS[0];
    const want = runCli(user, 40);
    // a stop sequence from the middle of the greedy answer
    const words = want.text.split(' ');
    const stopAt = words.slice(0, Math.max(2, Math.floor(words.length / 2))).join(' ').length;
    const stop = want.text.slice(stopAt, stopAt + 4);
    truthy(stop.length >= 2, `greedy answer too short to pick a stop sequence: ${want.text}`);
    const cut = want.text.slice(0, want.text.indexOf(stop));
    const messages = [{ role: 'user', content: user }];
    const r = await client.chat.completions.create({ model: 'x', messages, temperature: 0, max_tokens: 40, stop: [stop, 'zzzq'] });
    eq(r.choices[0].message.content, cut, `text cut before stop ${JSON.stringify(stop)}`);
    eq(r.choices[0].finish_reason, 'stop', 'finish_reason at a stop sequence');
    const s = await streamText(messages, { temperature: 0, max_tokens: 40, stop });
    eq(s.text, cut, 'streamed text cut before the stop sequence (never sent in part)');
    eq(s.finish, 'stop', 'streamed finish_reason');
    const l = await client.chat.completions.create({ model: 'x', messages, temperature: 0, max_tokens: 3 });
    eq(l.choices[0].finish_reason, 'length', 'max_tokens -> length');
    eq(l.usage.completion_tokens, 3, 'max_tokens honoured');
    const l2 = await client.chat.completions.create({ model: 'x', messages, temperature: 0, max_completion_tokens: 2 });
    eq(l2.usage.completion_tokens, 2, 'max_completion_tokens honoured');
  },

  async errors() {
    const ok = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 };
    const bad = [
      ['{"messages": [', 400, null, 'malformed JSON'],
      ['[1,2]', 400, null, 'not an object'],
      [{ max_tokens: 3 }, 400, 'messages', 'messages missing'],
      [{ messages: 'hi' }, 400, 'messages', 'messages not an array'],
      [{ messages: [] }, 400, 'messages', 'messages empty'],
      [{ messages: [{ role: 'wizard', content: 'x' }] }, 400, 'messages[0].role', 'bad role'],
      [{ messages: [{ role: 'user', content: 5 }] }, 400, 'messages[0].content', 'content a number'],
      [{ messages: [{ role: 'user', content: 'a' }, { role: 'user' }] }, 400, 'messages[1].content', 'content missing'],
      [{ ...ok, temperature: 'hot' }, 400, 'temperature', 'temperature a string'],
      [{ ...ok, temperature: 7 }, 400, 'temperature', 'temperature out of range'],
      [{ ...ok, max_tokens: 1.5 }, 400, 'max_tokens', 'max_tokens not an integer'],
      [{ ...ok, max_tokens: -1 }, 400, 'max_tokens', 'max_tokens negative'],
      [{ ...ok, top_p: [] }, 400, 'top_p', 'top_p an array'],
      [{ ...ok, stream: 'yes' }, 400, 'stream', 'stream a string'],
      [{ ...ok, stop: 3 }, 400, 'stop', 'stop a number'],
      [{ ...ok, stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'stop', 'five stop sequences'],
      [{ ...ok, n: 2 }, 400, 'n', 'n = 2'],
      [{ ...ok, seed: 'x' }, 400, 'seed', 'seed a string'],
      [{ ...ok, stream_options: { include_usage: 1 } }, 400, 'stream_options.include_usage', 'include_usage a number'],
      [{ messages: [{ role: 'user', content: 'word '.repeat(6000) }] }, 400, 'messages', 'prompt longer than the context'],
    ];
    for (const [body, status, param, what] of bad) {
      const r = await post('/v1/chat/completions', body);
      eq(r.status, status, `${what}: status`);
      truthy(r.json && r.json.error && typeof r.json.error.message === 'string' && r.json.error.message.length,
        `${what}: an OpenAI error object (${r.text})`);
      for (const k of ['message', 'type', 'param', 'code']) truthy(k in r.json.error, `${what}: error.${k} present`);
      eq(r.json.error.param, param, `${what}: error.param`);
      truthy(!r.json.error.message.includes('\n'), `${what}: one line`);
    }
    let r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'word '.repeat(6000) }] });
    truthy(/\d+ tokens; the context holds \d+/.test(r.json.error.message), `too long names the lengths: ${r.json.error.message}`);
    r = await post('/v1/completions', { prompt: 7 });
    eq([r.status, r.json.error.param], [400, 'prompt'], 'completions: prompt a number');
    // 401: wrong or missing key, through the client too
    r = await post('/v1/chat/completions', ok, { Authorization: 'Bearer wrong' });
    eq(r.status, 401, 'wrong key');
    eq(r.json.error.type, 'authentication_error', 'wrong key type');
    const noauth = await fetch(URL_ + '/v1/models');
    eq(noauth.status, 401, 'missing key');
    const other = new OpenAI({ baseURL: URL_ + '/v1', apiKey: 'nope', maxRetries: 0, ...transport });
    try { await other.models.list(); fail('client with a wrong key succeeded'); } catch (e) { eq(e.status, 401, 'client sees 401'); }
    // 413: a body above --max-body
    r = await post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(300000) }] }));
    eq(r.status, 413, 'oversized body');
    truthy(r.json.error.message.includes('--max-body'), '413 names the limit');
    // 404 and 405
    r = await post('/v1/embeddings', {});
    eq(r.status, 404, 'unknown endpoint');
    truthy(r.json.error.message.includes('/v1/embeddings'), '404 names the path');
    eq((await fetch(URL_ + '/nope')).status, 404, 'unknown page');
    eq((await fetch(URL_ + '/v1/chat/completions', { headers: { Authorization: `Bearer ${KEY}` } })).status, 405, 'GET on a POST endpoint');
    await waitIdle('after the errors');
  },

  async parallel() {
    // each question's answer alone, one at a time, then all 8 at once streamed
    const solo = [];
    for (const q of QUESTIONS) {
      const r = await client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: q }], temperature: 0, max_tokens: 32 });
      solo.push(r.choices[0].message.content);
    }
    const t0 = Date.now();
    const got = await Promise.all(QUESTIONS.map((q) => streamText([{ role: 'user', content: q }], { temperature: 0, max_tokens: 32 })));
    for (let i = 0; i < QUESTIONS.length; i++) eq(got[i].text, solo[i], `parallel stream ${i} equals its solo answer`);
    console.log(`8 parallel streams: ${Date.now() - t0} ms`);
    // sampled (not greedy) with a fixed seed: the same text in parallel as alone
    const seeded = { temperature: 0.9, seed: 1234, max_tokens: 24 };
    const alone = await streamText([{ role: 'user', content: QUESTIONS[2] }], seeded);
    const many = await Promise.all([0, 1, 2, 3].map(() => streamText([{ role: 'user', content: QUESTIONS[2] }], seeded)));
    for (const m of many) eq(m.text, alone.text, 'seeded sampling in parallel equals alone');
    await waitIdle('after the parallel streams');
  },

  async queue() { // --parallel 8 --queue 2: 12 long requests at once, 2 are refused with 429
    const reqs = Array.from({ length: 12 }, (_, i) => post('/v1/chat/completions',
      { messages: [{ role: 'user', content: QUESTIONS[i % 8] }], max_tokens: 48, temperature: 0 }));
    const rs = await Promise.all(reqs);
    const codes = rs.map((r) => r.status).sort();
    eq(codes.filter((c) => c === 200).length, 10, `10 served (statuses ${codes})`);
    eq(codes.filter((c) => c === 429).length, 2, '2 refused');
    const r429 = rs.find((r) => r.status === 429);
    eq(r429.json.error.type, 'rate_limit_error', '429 error type');
    const m = await waitIdle('after the queue test');
    truthy(m['phiq_requests_rejected_total{reason="queue_full"}'] >= 2, 'metrics count the refusals');
  },

  async disconnect() {
    const before = await metrics();
    const ac = new AbortController();
    const s = await client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: QUESTIONS[3] }],
      max_tokens: 4000, temperature: 0.8, stream: true }, { signal: ac.signal });
    let n = 0;
    try {
      for await (const ch of s) { if (++n === 3) ac.abort(); }
    } catch { /* aborted */ }
    const m = await waitIdle('a client that left mid-stream'); // its slot frees at once
    truthy(m.phiq_requests_cancelled_total > (before.phiq_requests_cancelled_total || 0), 'counted as cancelled');
    truthy(m.phiq_tokens_generated_total - before.phiq_tokens_generated_total < 1000, 'generation stopped early');
    const r = await client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
    eq(r.usage.completion_tokens <= 4, true, 'the next request is served');
  },

  async kvreuse() {
    const m1 = [{ role: 'user', content: QUESTIONS[4] }];
    const r1 = await client.chat.completions.create({ model: 'x', messages: m1, temperature: 0, max_tokens: 16 });
    const m2 = [...m1, { role: 'assistant', content: r1.choices[0].message.content }, { role: 'user', content: 'And then?' }];
    const r2 = await client.chat.completions.create({ model: 'x', messages: m2, temperature: 0, max_tokens: 16 });
    const cached = r2.usage.prompt_tokens_details.cached_tokens;
    truthy(cached >= r1.usage.prompt_tokens, `the second turn reuses the first turn's cache (${cached} cached of ${r2.usage.prompt_tokens}; first prompt ${r1.usage.prompt_tokens})`);
    const m = await metrics();
    truthy(m.phiq_prompt_tokens_cached_total >= cached, 'metrics count the reused tokens');
  },

  async malformed() { // N random malformed bodies: each refused, the server stays healthy
    const n = Number(process.env.PHIQ_SERVE_FUZZ_N || 1000);
    let seed = 12345;
    const rnd = (k) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % k; };
    const pieces = ['{', '}', '[', ']', '"messages"', ':', ',', '"role"', '"user"', '"content"', 'null', 'true', '1e999',
      '-', '"\\u0000"', '"\\ud800"', '\u00ff', '"max_tokens"', '"stop"', '"temperature"', '"stream"', '{"role":"user","content":',
      '"', '\\', '0', '99999999999999999999', '"n"', '[[[[[[[[', ']]]]', ' '];
    const statuses = {};
    for (let i = 0; i < n; i++) {
      let body = '';
      const k = 1 + rnd(24);
      for (let j = 0; j < k; j++) body += pieces[rnd(pieces.length)];
      if (rnd(4) === 0) body = '{"messages":[{"role":"user","content":"hi"}],"max_tokens":' + pieces[rnd(pieces.length)] + '}';
      if (rnd(50) === 0) body = '['.repeat(100000);
      const r = await post(rnd(2) ? '/v1/chat/completions' : '/v1/completions', body);
      statuses[r.status] = (statuses[r.status] || 0) + 1;
      if (r.status >= 500) fail(`body ${JSON.stringify(body).slice(0, 200)} -> ${r.status}`);
      if (r.status !== 200 && !(r.json && r.json.error)) fail(`status ${r.status} without an error object: ${r.text.slice(0, 200)}`);
    }
    console.log('statuses:', JSON.stringify(statuses));
    eq((await fetch(URL_ + '/health')).status, 200, 'healthy after the malformed bodies');
    await waitIdle('after the malformed bodies');
  },

  async slowclient() { // a client that sends half a request and stalls is dropped after --timeout
    const u = new URL(URL_);
    const t0 = Date.now();
    await new Promise((resolve, reject) => {
      const s = net.connect(Number(u.port), u.hostname, () => s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"mess'));
      s.on('close', resolve);
      s.on('error', resolve);
      setTimeout(() => reject(new Error('a stalled client was not dropped within 20 s')), 20000);
    });
    console.log(`stalled client dropped after ${Date.now() - t0} ms`);
    eq((await fetch(URL_ + '/health')).status, 200, 'healthy after a stalled client');
  },

  async sigterm() { // SIGTERM mid-stream: the stream ends properly, the server exits 0 (checked by the caller)
    const s = await client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: QUESTIONS[5] }],
      max_tokens: 4000, temperature: 0.8, stream: true });
    let n = 0, finish = null;
    for await (const ch of s) {
      if (++n === 3) process.kill(Number(process.env.PHIQ_SERVE_PID), 'SIGTERM');
      if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
    }
    eq(finish, 'length', 'a stream cut by shutdown ends with finish_reason length');
  },
};

cases.page = async function page() { // the chat page in Debian's headless Chromium
  const puppeteer = require('puppeteer-core');
  const browser = await puppeteer.launch({ executablePath: process.env.PHIQ_CHROMIUM || '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const p = await browser.newPage();
    await p.setViewport({ width: 1100, height: 700 });
    const foreign = [];
    p.on('request', (r) => { if (!r.url().startsWith(URL_)) foreign.push(r.url()); });
    const before = await metrics();
    await p.goto(URL_ + '/', { waitUntil: 'load' });
    const setField = (id, v) => p.$eval('#' + id, (el, v) => { el.value = v; el.dispatchEvent(new Event('change')); el.dispatchEvent(new Event('input')); }, v);
    await setField('key', KEY);
    await setField('temp', '0');
    await setField('system', 'You are a helpful assistant who quotes scripture.');
    // a short answer, to the end
    await setField('maxtok', '40');
    await p.type('#input', QUESTIONS[0]);
    await p.keyboard.press('Enter');
    await p.waitForSelector('.msg.assistant .meta', { timeout: 30000 });
    const first = await p.$eval('.msg.assistant .body', (el) => el.textContent);
    truthy(first.length > 0, 'the first answer has text');
    const meta = await p.$eval('.msg.assistant .meta', (el) => el.textContent);
    truthy(/tok\/s/.test(meta), `tokens/s shown: ${meta}`);
    // a long answer, stopped as soon as it streams
    await setField('maxtok', '4000');
    await p.type('#input', QUESTIONS[3]);
    await p.click('#send');
    await p.waitForFunction(() => { const b = document.querySelectorAll('.msg.assistant .body'); return b.length === 2 && b[1].textContent.length > 0; },
      { polling: 'mutation', timeout: 30000 });
    const partial = await p.$$eval('.msg.assistant .body', (b) => b[1].textContent.length);
    await p.click('#stop');
    await p.waitForFunction(() => document.querySelectorAll('.msg.assistant .meta').length === 2, { timeout: 10000 });
    const meta2 = await p.$$eval('.msg.assistant .meta', (m) => m[1].textContent);
    eq(meta2, 'stopped', 'the second answer was stopped mid-way');
    truthy(partial > 0, 'text appeared before stop');
    eq(await p.$eval('#send', (b) => b.disabled), false, 'send enabled again after stop');
    const m = await waitIdle('after the page stopped its answer');
    truthy(m.phiq_requests_cancelled_total > (before.phiq_requests_cancelled_total || 0), 'the stop cancelled the request on the server');
    eq(foreign, [], 'the page fetches nothing outside the server');
    if (process.env.PHIQ_SERVE_SCREENSHOT) await p.screenshot({ path: process.env.PHIQ_SERVE_SCREENSHOT });
  } finally {
    await browser.close();
  }
};

const name = process.argv[2];
if (!cases[name]) { console.error(`unknown case ${name}`); process.exit(2); }
try {
  await cases[name]();
  process.exit(0);
} catch (e) {
  console.error(`${name}: ${e.message}${e.cause ? ` (${e.cause.code ?? e.cause.message ?? e.cause})` : ""}`);
  process.exit(1);
}
