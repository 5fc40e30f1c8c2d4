// feed.js — runs any ONNX model in onnxruntime-node (CPU) on float32/int64
// inputs read from raw little-endian files and writes every output as raw
// float32. Used by the single-node MatMulNBits checks.
// usage: node feed.js MODEL.onnx OUT_PREFIX NAME=FILE:TYPE:D0xD1x... ...
//   TYPE: f32 or i64. Each output NAME is written to OUT_PREFIX.NAME.f32
//   (non-float outputs are converted to float32).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, prefix, ...specs] = process.argv.slice(2);
  if (!model || !prefix) {
    console.error('usage: node feed.js MODEL.onnx OUT_PREFIX NAME=FILE:TYPE:D0xD1 ...');
    process.exit(2);
  }
  const feeds = {};
  for (const s of specs) {
    const m = /^([^=]+)=(.+):(f32|i64):([0-9x]+)$/.exec(s);
    if (!m) throw new Error('bad input spec ' + s);
    const dims = m[4].split('x').map(Number);
    const buf = fs.readFileSync(m[2]);
    const data = m[3] === 'f32'
      ? new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length))
      : new BigInt64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    feeds[m[1]] = new ort.Tensor(m[3] === 'f32' ? 'float32' : 'int64', data, dims);
  }
  const sess = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  const r = await sess.run(feeds);
  for (const name of Object.keys(r)) {
    const t = r[name];
    const f = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data, Number);
    fs.writeFileSync(`${prefix}.${name}.f32`, Buffer.from(f.buffer, f.byteOffset, f.byteLength));
  }
  console.log(JSON.stringify({ ort: ort.env.versions.common, outputs: Object.keys(r) }));
}
main().catch((e) => { console.error('feed.js: ' + (e && e.message ? e.message : e)); process.exit(1); });
