// ONNX Runtime (CPU) peer: times the exported MRM-Net (bench/peers/export_onnx.py) at batch 1 and
// batch 32 with 2 intra-op threads (or --threads N) and prints JSON. First checks that ONNX Runtime's logits equal
// the PyTorch twin's on the check input (max |diff| <= 1e-4, else exit 1).
//
//   node bench/peers/ort_peer.js [DIR (default build-peers)] [--iters1 N] [--iters32 N] [--threads N (default 2)]
//
// Needs onnxruntime-node: cd bench && ONNXRUNTIME_NODE_INSTALL=skip npm install
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'node_modules', 'onnxruntime-node'));

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

function readF32(file, n) {
  const b = fs.readFileSync(file);
  if (b.length !== 4 * n) throw new Error(`${file}: ${b.length} bytes, expected ${4 * n}`);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = b.readFloatLE(4 * i);
  return out;
}

const numel = (shape) => shape.reduce((a, b) => a * b, 1);

async function timeBatch(session, B, warmup, iters) {
  const x = new Float32Array(B * 12 * 1000);
  let seed = 12345;
  for (let i = 0; i < x.length; i++) { seed = (seed * 1103515245 + 12345) >>> 0; x[i] = seed / 2 ** 32 - 0.5; }
  const feeds = { x: new ort.Tensor('float32', x, [B, 12, 1000]) };
  for (let i = 0; i < warmup; i++) await session.run(feeds);
  const ms = [];
  const c0 = process.cpuUsage();
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const c = process.cpuUsage(c0);
  const cpuMs = (c.user + c.system) / 1e3 / iters;
  ms.sort((a, b) => a - b);
  const median = ms[Math.floor(ms.length / 2)];
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  return {
    batch: B, warmup, iters, ms_per_batch_median: median, ms_per_batch_mean: mean,
    ms_per_batch_min: ms[0], cpu_ms_per_batch: cpuMs, ms_per_record: median / B, records_per_s: 1000 * B / median,
  };
}

async function main() {
  const dir = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2]
    : path.join(__dirname, '..', '..', 'build-peers');
  const info = JSON.parse(fs.readFileSync(path.join(dir, 'check.json'), 'utf8'));
  const threads = arg('--threads', 2);
  if (!Number.isInteger(threads) || threads < 1) throw new Error('--threads wants a positive integer');
  const opts = {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all', executionProviders: ['cpu'],
  };
  const session = await ort.InferenceSession.create(path.join(dir, info.model), opts);

  const xs = info.x.shape;
  const x = readF32(path.join(dir, info.x.file), numel(xs));
  const res = await session.run({ x: new ort.Tensor('float32', x, xs) });
  let maxDiff = 0;
  for (const name of ['out1', 'out2']) {
    const want = readF32(path.join(dir, info[name].file), numel(info[name].shape));
    const got = res[name].data;
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
  }
  const check = { max_abs_diff_vs_torch: maxDiff, tolerance: 1e-4, ok: maxDiff <= 1e-4 };
  const t1 = await timeBatch(session, 1, 2, arg('--iters1', 20));
  const t32 = await timeBatch(session, 32, 1, arg('--iters32', 3));
  const report = {
    peer: 'onnxruntime-node', version: ort.env.versions, threads, check,
    infer_b1: t1, infer_b32: t32, peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  };
  console.log(JSON.stringify(report, null, 1));
  if (!check.ok) process.exit(1);
}

main().catch((e) => { console.error(e); process.exit(1); });
