// run.js — runs an exported phiq ONNX decoder in onnxruntime-node (CPU) and
// writes the float32 logits of every position, row-major [S, vocab].
// usage: node run.js MODEL_DIR IDS_JSON_FILE OUT.f32 [--step] [--threads N] [--share MAX]
//   IDS_JSON_FILE: a JSON array of token ids.
//   --step: prefill the first token, then feed one token at a time through
//           the KV cache (present -> past), exercising the decode path.
//   --share MAX: past and present KV are one buffer of MAX positions per
//           layer, bound as both the input and the pre-allocated output, as
//           ORT GenAI does with past_present_share_buffer (SparseAttention
//           requires it).
// The model geometry comes from genai_config.json beside model.onnx.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 3) {
    console.error('usage: node run.js MODEL_DIR IDS_JSON OUT.f32 [--step] [--threads N]');
    process.exit(2);
  }
  const [dir, idsFile, outFile] = args;
  const step = args.includes('--step');
  const ti = args.indexOf('--threads');
  const threads = ti >= 0 ? parseInt(args[ti + 1], 10) : 1;
  const si = args.indexOf('--share');
  const share = si >= 0 ? parseInt(args[si + 1], 10) : 0;
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'genai_config.json'), 'utf8'));
  const dec = cfg.model.decoder;
  const L = dec.num_hidden_layers, KV = dec.num_key_value_heads, HD = dec.head_size, V = cfg.model.vocab_size;
  const ids = JSON.parse(fs.readFileSync(idsFile, 'utf8'));
  const sess = await ort.InferenceSession.create(path.join(dir, dec.filename), {
    executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1,
  });
  let past = [];
  for (let l = 0; l < 2 * L; l++) past.push(new ort.Tensor('float32', new Float32Array(KV * share * HD), [1, KV, share, HD]));
  const fetches = { logits: null };
  if (share) for (let l = 0; l < L; l++) fetches[`present.${l}.key`] = past[2 * l], fetches[`present.${l}.value`] = past[2 * l + 1];
  const out = new Float32Array(ids.length * V);
  const chunks = step ? ids.map((t) => [t]) : [ids];
  let done = 0;
  for (const chunk of chunks) {
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(chunk.map(BigInt)), [1, chunk.length]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(done + chunk.length).fill(1n), [1, done + chunk.length]),
    };
    for (let l = 0; l < L; l++) {
      feeds[`past_key_values.${l}.key`] = past[2 * l];
      feeds[`past_key_values.${l}.value`] = past[2 * l + 1];
    }
    const r = share ? await sess.run(feeds, fetches) : await sess.run(feeds);
    const lg = r.logits;
    if (lg.type !== 'float32' || lg.dims.length !== 3 || lg.dims[1] !== chunk.length || lg.dims[2] !== V)
      throw new Error(`unexpected logits ${lg.type} [${lg.dims}]`);
    out.set(lg.data, done * V);
    if (!share) {
      past = [];
      for (let l = 0; l < L; l++) past.push(r[`present.${l}.key`], r[`present.${l}.value`]);
    }
    done += chunk.length;
  }
  fs.writeFileSync(outFile, Buffer.from(out.buffer));
  console.log(JSON.stringify({ ort: ort.env.versions.common, positions: ids.length, vocab: V }));
}
main().catch((e) => { console.error('run.js: ' + (e && e.message ? e.message : e)); process.exit(1); });
