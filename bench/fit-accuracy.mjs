// bench/fit-accuracy.mjs — drover fit's predictions against what llama.cpp really does.
//
// usage: node bench/fit-accuracy.mjs [--quick] [--only TEXT] [-t THREADS]
// needs: build/drover. Models: ../shared/models/stories260K.gguf and random-weight
// models of catalog shapes written by `drover synth` once into
// $XDG_CACHE_HOME/drover/bench (~/.cache/drover/bench): llama3.2:1b at q4_0 and
// q8_0, qwen2.5:3b at q4_k_m, gemma3:1b, small qwen3moe and gemma4 shapes
// (--quick: fewer cases, no q8_0 1B, gemma or MoE; --only TEXT: the models whose
// label contains TEXT, with their cases, e.g. --only gemma4).
//
// Memory: each case loads the model in `drover serve` (the program fit predicts
// for) with the same context, KV type and parallel sequences, makes one request,
// and reads the buffer sizes llama.cpp logs at debug level ("CPU_Mapped model
// buffer size", "CPU KV buffer size", "CPU compute buffer size", "CPU output
// buffer size"). A "CPU_REPACK model buffer" (x86 CPUs repack q4_0/q4_K blocks
// for their SIMD kernels) is a copy of tensors that stay in the mapped file: the
// mapped pages of those tensors are never read again and the kernel may drop
// them, so it is shown but not added. Predicted = `drover fit --json` weights +
// KV + compute of every device (the fixed overhead, 150 MiB, is not a buffer).
// RSS after the request is shown for reference (mapped pages, the repack copy
// and untouched compute pages make it neither an upper nor a lower bound).
//
// Speed: `drover bench --local` tg (median of reps, from depth 0) against the
// roofline range `drover fit` predicts for the same context, with the bandwidth
// `drover hw` measures right before (the baseline in the same run: on a shared
// machine both move with the load). A run whose repetitions spread more than
// 25 % met another job on the machine and is tried once more.
//
// Targets (issue #5): memory within 10 % in every case; measured tg inside the
// predicted range.
import { spawn, execFileSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import { argv, drover, median, physicalCores, root } from "./common.mjs";

const { args, opt } = argv();
const quick = args.includes("--quick");
const only = opt("--only", null);
const tOpt = opt("-t", null);
const threads = tOpt ? +tOpt : physicalCores();
if (!fs.existsSync(drover)) { console.error(`missing ${drover} (run: make build)`); process.exit(1); }

const MiB = 1024 * 1024;
const cache = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "drover/bench");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "drover-fit-accuracy-"));
const t0 = Date.now();
const log = (s) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0)}s] ${s}\n`);

// A catalog model synthesized once (random weights: speed and memory depend on
// shapes and types only).
function synth(name, quant, stem = name.replace(":", "-")) {
  fs.mkdirSync(cache, { recursive: true });
  const f = path.join(cache, `${stem}-${quant}.gguf`);
  if (!fs.existsSync(f)) {
    log(`synthesizing ${name} ${quant} into ${f} (once)`);
    const part = `${f}.part${process.pid}`;
    execFileSync(drover, ["synth", name, "--quant", quant, "-o", part], { stdio: ["ignore", "ignore", "inherit"] });
    fs.renameSync(part, f);
  }
  return f;
}

const stories = path.resolve(root, "../shared/models/stories260K.gguf");
// file(): the model's path, synthesized on first use (only the models --only keeps)
const models = [
  { label: "stories260K f32", file: () => stories },
  { label: "llama3.2:1b q4_0", file: () => synth("llama3.2:1b", "q4_0") },
  ...(quick ? [] : [{ label: "llama3.2:1b q8_0", file: () => synth("llama3.2:1b", "q8_0") }]),
  { label: "qwen2.5:3b q4_k_m", file: () => synth("qwen2.5:3b", "q4_k_m") },
  // sliding-window layers (5 local : 1 global, window 512) and a mixture of experts
  ...(quick ? [] : [
    { label: "gemma3:1b q4_k_m", file: () => synth("gemma3:1b", "q4_k_m") },
    { label: "qwen3moe 32x512 q4_k_m", file: () => synth("qwen3moe:layers=8,embd=1024,heads=16,kv_heads=4," +
      "head_dim=64,ff=2048,vocab=32000,experts=32,experts_used=4,expert_ff=512", "q4_k_m", "qwen3moe-32x512") },
    // gemma4:26b's layout at a small size: 5 sliding layers (4 kv heads of 128,
    // window 1024) to 1 global (1 kv head of 256, K as V), a dense FFN beside 4
    // of 32 experts, a 32000 vocabulary (the 26B's 262144 would make it mostly
    // embeddings)
    { label: "gemma4 32x256 q4_k_m", file: () => synth("gemma4:layers=12,embd=1024,heads=8,kv_heads=4," +
      "head_dim=128,global_kv_heads=1,global_head_dim=256,ff=768,vocab=32000,experts=32,experts_used=4," +
      "expert_ff=256,swa=1024", "q4_k_m", "gemma4-32x256") },
  ]),
].filter((m) => !only || m.label.includes(only));
if (models.length === 0) { console.error(`no model label contains '${only}'`); process.exit(2); }
for (const m of models) m.file = m.file();
const M = Object.fromEntries(models.map((m) => [m.label, m]));
// [model, ctx, kv, parallel]; stories' head_dim 8 has no flash-attention kernel, so no q8_0 KV
const cases = (quick
  ? [["stories260K f32", 4096, "f16", 1], ["llama3.2:1b q4_0", 4096, "f16", 1],
     ["llama3.2:1b q4_0", 4096, "q8_0", 1], ["qwen2.5:3b q4_k_m", 512, "f16", 1]]
  : [["stories260K f32", 512, "f16", 1], ["stories260K f32", 4096, "f16", 1],
     ["llama3.2:1b q4_0", 512, "f16", 1], ["llama3.2:1b q4_0", 4096, "f16", 1],
     ["llama3.2:1b q4_0", 4096, "q8_0", 1], ["llama3.2:1b q4_0", 2048, "f16", 2],
     ["llama3.2:1b q8_0", 512, "q8_0", 1], ["llama3.2:1b q8_0", 8192, "f16", 1],
     ["qwen2.5:3b q4_k_m", 512, "f16", 1], ["qwen2.5:3b q4_k_m", 4096, "q8_0", 1],
     ["qwen2.5:3b q4_k_m", 16384, "f16", 1],
     ["gemma3:1b q4_k_m", 4096, "f16", 1], ["gemma3:1b q4_k_m", 8192, "f16", 2],
     ["qwen3moe 32x512 q4_k_m", 2048, "f16", 1],
     ["gemma4 32x256 q4_k_m", 512, "f16", 1], ["gemma4 32x256 q4_k_m", 8192, "f16", 1],
     ["gemma4 32x256 q4_k_m", 4096, "q8_0", 2]]).filter(([label]) => M[label]);

// The machine profile predictions use; measureHw() refreshes its bandwidth (a
// shared machine's bandwidth moves with the load on it: each speed case measures
// it right before its own run).
const hwFile = path.join(tmp, "hw.json");
const measureHw = () => {
  fs.writeFileSync(hwFile, execFileSync(drover, ["hw", "--json"]));
  return JSON.parse(fs.readFileSync(hwFile, "utf8"));
};
const hw = measureHw();
const fit = (file, ctx, kv, par) => JSON.parse(execFileSync(drover,
  ["fit", file, "--ctx", String(ctx), "--kv", kv, "--parallel", String(par), "--hw", hwFile, "--json"]).toString());

// Loads the model in drover serve and returns llama.cpp's buffers (MiB) and the RSS.
async function measureMemory(file, ctx, kv, par) {
  const logFile = path.join(tmp, "serve.log");
  const fd = fs.openSync(logFile, "w");
  const srv = spawn(drover, ["serve", "--model", file, "--port", "0", "--ctx", String(ctx), "--kv-type", kv,
    "--parallel", String(par), "--threads", String(threads), "--log-level", "debug", "--no-ollama-store"],
    { stdio: ["ignore", "ignore", fd] });
  const exited = new Promise((res) => srv.on("exit", (code, sig) => res(sig || code)));
  try {
    let port = null;
    for (let i = 0; i < 300 && !port; i++) {
      await sleep(100);
      const m = fs.readFileSync(logFile, "utf8").match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) port = m[1];
    }
    if (!port) throw new Error(`drover serve did not start:\n${fs.readFileSync(logFile, "utf8")}`);
    const name = path.basename(file, ".gguf");
    const r = await fetch(`http://127.0.0.1:${port}/api/generate`, { method: "POST",
      body: JSON.stringify({ model: name, prompt: "Once upon a time", stream: false, options: { num_predict: 1 } }) });
    if (!r.ok) throw new Error(`generate: ${r.status} ${await r.text()}`);
    await r.json();
    const status = fs.readFileSync(`/proc/${srv.pid}/status`, "utf8");
    const rss = +status.match(/VmRSS:\s+(\d+)/)[1] * 1024;
    const text = fs.readFileSync(logFile, "utf8");
    const buf = {};
    for (const m of text.matchAll(/(\S+)\s+(model|KV|compute|output) buffer size =\s+([\d.]+) MiB/g)) {
      const k = `${m[1]} ${m[2]}`;
      // KV: one buffer per cache (a sliding-window model has two): summed;
      // the others: the last report of each buffer
      buf[k] = m[2] === "KV" ? (buf[k] || 0) + +m[3] : +m[3];
    }
    return { buf, rss };
  } finally {
    srv.kill("SIGTERM");
    const how = await exited;
    fs.closeSync(fd);
    if (how !== 0 && how !== "SIGTERM") log(`note: drover serve ended with ${how}`);
  }
}

const pct = (x) => `${x >= 1 ? "+" : ""}${((x - 1) * 100).toFixed(1)}%`;
const mib = (b) => (b / MiB).toFixed(1);
const rows = [];
let misses = 0;
for (const [label, ctx, kv, par] of cases) {
  const file = M[label].file;
  log(`memory: ${label} ctx ${ctx} kv ${kv} x${par}`);
  const f = fit(file, ctx, kv, par);
  const sum = (k) => f.devices.reduce((a, d) => a + d[k], 0);
  const pred = { w: sum("weights_bytes"), kv: sum("kv_bytes"), c: sum("compute_bytes") };
  const { buf, rss } = await measureMemory(file, ctx, kv, par);
  const get = (re) => Object.entries(buf).filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v * MiB, 0);
  const meas = { w: get(/^CPU_Mapped model$|^CPU model$/), repack: get(/REPACK model$/), kv: get(/ KV$/),
                 c: get(/ compute$/) + get(/ output$/) };
  const pt = pred.w + pred.kv + pred.c, mt = meas.w + meas.kv + meas.c;
  const ok = Math.abs(pt / mt - 1) <= 0.10;
  if (!ok) misses++;
  rows.push([`${label}`, `${ctx}`, kv, `${par}`, mib(pred.kv), mib(meas.kv), mib(pred.c), mib(meas.c),
    mib(pt), mib(mt), pct(pt / mt), ok ? "ok" : "MISS", mib(meas.repack), mib(rss)]);
}

// tg: one run per model, short context so that the KV read is small in both
const P = 16, N = quick ? 32 : 64, R = 3;
const tgRows = [];
const tmpdb = path.join(tmp, "history.db");
// One speed run: the bandwidth now, the prediction from it, the measurement.
function speedRun(m) {
  const bw = measureHw().memory.bandwidth_gbps;
  const f = fit(m.file, P + N, "f16", 1);
  const b = JSON.parse(execFileSync(drover, ["bench", "--local", m.file, "-p", String(P), "-n", String(N),
    "-r", String(R), "--threads", String(threads), "--json", "--db", tmpdb], { stdio: ["ignore", "pipe", "ignore"] }).toString());
  return { bw, f, tg: b.tg_tps, spread: (b.tg_tps.max - b.tg_tps.min) / b.tg_tps.median };
}
for (const m of models) {
  log(`speed: ${m.label}`);
  let run = speedRun(m);
  // another job on the machine shows as a spread between repetitions: try once more
  if (run.spread > 0.25) {
    log(`speed: ${m.label}: reps spread ${(run.spread * 100).toFixed(0)} %, the machine is busy; once more`);
    const again = speedRun(m);
    if (again.spread < run.spread) run = again;
  }
  const { bw, f } = run;
  const lo = f.generation.tok_s_low, hi = f.generation.tok_s_high, tg = run.tg.median;
  const ok = tg >= lo && tg <= hi;
  if (!ok) misses++;
  tgRows.push([m.label, bw.toFixed(1), lo.toFixed(1), hi.toFixed(1), tg.toFixed(1),
    `${run.tg.min.toFixed(1)}-${run.tg.max.toFixed(1)}`, (tg / Math.sqrt(lo * hi)).toFixed(2), ok ? "ok" : "MISS",
    (f.generation.bytes_per_token / MiB).toFixed(1), (tg * f.generation.bytes_per_token / 1e9 / bw * 100).toFixed(0) + "%"]);
}
fs.rmSync(tmp, { recursive: true, force: true });

const table = (head, body) => {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ");
  console.log(line(head));
  for (const r of body) console.log(line(r));
};
console.log(`drover fit vs llama.cpp ${execFileSync(drover, ["version"]).toString().split("\n")[0]}; ` +
  `${hw.cpu.model}, ${threads} threads`);
console.log(`\nmemory (MiB; predicted = fit's weights + KV + compute; llama.cpp = its logged buffers, target within 10 %)`);
table(["model", "ctx", "kv", "seq", "kv pred", "kv llama", "comp pred", "comp llama", "total pred", "total llama",
  "ratio", "", "repack", "rss"], rows);
console.log(`\ngeneration (tok/s; predicted roofline at ${P + N} ctx from the bandwidth measured just before ` +
  `(GB/s) vs bench --local tg${N}, median of ${R}; target: inside the range)`);
table(["model", "GB/s", "pred low", "pred high", "measured", "min-max", "vs mid", "", "MiB/token", "of bw"], tgRows);
console.log(`\n${misses ? `${misses} case(s) missed the target` : "every case within its target"}; ` +
  `${((Date.now() - t0) / 1000).toFixed(0)} s`);
process.exitCode = misses ? 1 : 0;
