// ONNX Runtime's memory for one model at batch 1 (docs/embedded.md): the process's resident set
// after loading onnxruntime-node (the runtime's code), then its peak after creating the session
// and running one record; the difference is what the model costs ONNX Runtime (weights, arena,
// work). Usage: node ort_memory.js MODEL.onnx [THREADS]
'use strict';
const fs = require('fs');

function rssKb() {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return Number(m[1]);
}
function hwmKb() {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return Number(m[1]);
}

async function main() {
  const ort = require('onnxruntime-node');
  const threads = Number(process.argv[3] || 1);
  if (global.gc) global.gc();
  const base = rssKb();
  const session = await ort.InferenceSession.create(process.argv[2], {
    intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
  });
  const afterLoad = rssKb();
  const x = new ort.Tensor('float32', new Float32Array(12 * 1000).fill(0.1), [1, 12, 1000]);
  for (let i = 0; i < 3; i++) await session.run({ x });
  const peak = hwmKb();
  console.log(JSON.stringify({
    threads, rss_after_runtime_kb: base, rss_after_session_kb: afterLoad, peak_after_run_kb: peak,
    session_kb: afterLoad - base, model_peak_kb: peak - base,
  }));
}
main().catch((e) => { console.error(e); process.exit(1); });
