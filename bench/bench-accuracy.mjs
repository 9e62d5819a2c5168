// bench/bench-accuracy.mjs — drover bench beside llama.cpp's own llama-bench, in one run.
//
// usage: node bench/bench-accuracy.mjs [MODEL.gguf] [-p 512] [-n 128] [-r 5] [-t THREADS]
// needs: build/drover and the reference tools (scripts/setup --with-reference).
// Without MODEL it uses (and once synthesizes) llama3.2:1b Q4_0 as
// bench/node-vs-llama-server.mjs does.
//
// Measures on the same model and threads: llama-bench pp/tg; `drover bench --local`
// (in-process, same method); `drover bench` against a llama-server of the model (over
// HTTP, server-reported timings). Prints each with its ratio to llama-bench.
// Targets (issue #4): --local tg within 5 % of llama-bench, pp within 10 %.
import { spawn, execFileSync } from "node:child_process";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import { argv, drover, median, modelOrDefault, physicalCores, reference, waitUp } from "./common.mjs";

const { args, opt } = argv();
const P = +opt("-p", 512), N = +opt("-n", 128), R = +opt("-r", 5);
const tOpt = opt("-t", null);
const threads = tOpt ? +tOpt : physicalCores();
const llamaBench = reference("llama-bench"), llamaServer = reference("llama-server");
const model = modelOrDefault(args[0]);

// 1. llama-bench
// depth 0 (llama-bench's usual numbers) and depth P: a server generates after the
// P-token prompt, so its tg is compared with llama-bench's tg at that depth
const lb = JSON.parse(execFileSync(llamaBench,
  ["-m", model, "-p", String(P), "-n", String(N), "-r", String(R), "-t", String(threads),
   "-d", `0,${P}`, "-o", "json"], { stdio: ["ignore", "pipe", "ignore"] }).toString());
const lbAt = (np, ng, d) => median(lb.find((x) => x.n_prompt === np && x.n_gen === ng && (x.n_depth || 0) === d).samples_ts);
const lbPP = lbAt(P, 0, 0), lbTG = lbAt(0, N, 0), lbTGd = lbAt(0, N, P);

// 2. drover bench --local (kept out of the user's history)
const tmpdb = path.join(os.tmpdir(), `drover-bench-accuracy-${process.pid}.db`);
const loc = JSON.parse(execFileSync(drover, ["bench", "--local", model, "-p", String(P), "-n", String(N),
  "-r", String(R), "--threads", String(threads), "--json", "--db", tmpdb], { stdio: ["ignore", "pipe", "ignore"] }).toString());

// 3. drover bench against llama-server
const port = 18500 + Math.floor(Math.random() * 500);
const ls = spawn(llamaServer, ["-m", model, "--host", "127.0.0.1", "--port", String(port),
  "-np", "1", "-c", String(P + N + 256), "-t", String(threads), "-b", "512", "-ub", "512", "--no-webui"],
  { stdio: ["ignore", "ignore", "ignore"] });
let http = null;
try {
  await waitUp(`http://127.0.0.1:${port}`);
  const out = execFileSync(drover, ["bench", `http://127.0.0.1:${port}`, "-p", String(P), "-n", String(N),
    "-r", String(R), "--json", "--db", tmpdb], { stdio: ["ignore", "pipe", "ignore"] }).toString();
  const lv = JSON.parse(out).targets[0].levels[0];
  http = { pp: lv.pp_tps.median, tg: lv.tg_tps.median };
} finally {
  ls.kill();
  fs.rmSync(tmpdb, { force: true });
  fs.rmSync(tmpdb + "-wal", { force: true });
  fs.rmSync(tmpdb + "-shm", { force: true });
}

const row = (name, pp, tg, tgRef) => console.log(`${name.padEnd(40)} ${pp.toFixed(1).padStart(9)} ${tg.toFixed(2).padStart(9)} ${(pp / lbPP).toFixed(3).padStart(9)} ${(tg / tgRef).toFixed(3).padStart(9)}`);
console.log(`model ${path.basename(model)}, pp${P} tg${N}, ${R} reps, ${threads} threads (medians)`);
console.log(`${"measured by".padEnd(40)} ${"pp tok/s".padStart(9)} ${"tg tok/s".padStart(9)} ${"pp ratio".padStart(9)} ${"tg ratio".padStart(9)}`);
row("llama-bench", lbPP, lbTG, lbTG);
row("drover bench --local", loc.pp_tps.median, loc.tg_tps.median, lbTG);
row(`llama-bench tg${N} at depth ${P}`, lbPP, lbTGd, lbTGd);
if (http) row(`drover bench -> llama-server (vs depth ${P})`, http.pp, http.tg, lbTGd);
console.log("ratios against llama-bench; a server generates after the prompt, so its tg is compared with llama-bench at that depth");
