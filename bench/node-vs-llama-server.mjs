// bench/node-vs-llama-server.mjs — drover serve beside llama.cpp's own llama-server
// (same release, same model, 4 slots each, same threads), as a client sees them.
//
// usage: node bench/node-vs-llama-server.mjs [MODEL.gguf] [-n GEN_TOKENS] [-r REPS]
// Without MODEL it synthesizes llama3.2:1b at Q4_0 (drover synth, random weights:
// the speed of the real model) into ~/.cache/drover/bench/ once.
// needs: build/drover and the reference llama-server (scripts/setup --with-reference).
//
// For each server and each concurrency (1, then 4): one warm-up, then REPS rounds of
// that many parallel streaming /v1/completions requests (greedy, max_tokens
// GEN_TOKENS, a different prompt each round so no prompt cache helps). Reports
// client-side aggregate generation tok/s, time to first token p50 and end-to-end
// latency, and drover's ratio against llama-server (>= 1.00 = drover as fast).
import { spawn } from "node:child_process";
import path from "node:path";
import { argv, drover, median, modelOrDefault, physicalCores, reference, waitUp } from "./common.mjs";

const { args, opt } = argv();
const nGen = +opt("-n", 128), reps = +opt("-r", 5);
const llamaServer = reference("llama-server");
const model = modelOrDefault(args[0]);
const threads = physicalCores();
const slots = 4;
const ctx = 512;

async function oneRequest(url, name, prompt) {
  const t0 = performance.now();
  const r = await fetch(url + "/v1/completions", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: name, prompt, max_tokens: nGen, temperature: 0, stream: true,
                           ignore_eos: true, stream_options: { include_usage: true } }),
  });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status} ${await r.text()}`);
  let ttft = 0, tokens = 0, buf = "";
  const dec = new TextDecoder();
  for await (const chunk of r.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, i); buf = buf.slice(i + 2);
      if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
      const j = JSON.parse(ev.slice(6));
      if (j.choices?.[0]?.text && !ttft) ttft = performance.now() - t0;
      if (j.usage) tokens = j.usage.completion_tokens;
    }
  }
  return { ttft, total: performance.now() - t0, tokens };
}


async function round(url, name, conc, r) {
  const t0 = performance.now();
  const res = await Promise.all(Array.from({ length: conc }, (_, k) =>
    oneRequest(url, name, `Once upon a time ${r * 97 + k}, there was`)));
  const wall = (performance.now() - t0) / 1000;
  const toks = res.reduce((a, x) => a + x.tokens, 0);
  return { tps: toks / wall, ttft: median(res.map((x) => x.ttft)), total: median(res.map((x) => x.total)), toks };
}

const summary = (rounds, conc) => ({ tps: median(rounds.map((x) => x.tps)), ttft: median(rounds.map((x) => x.ttft)),
  total: median(rounds.map((x) => x.total)), toks: rounds[0].toks / conc });

// Both servers in the same loop, alternating which goes first in each repetition,
// so a drift of the machine (heat, other load) does not favour either.
async function measureBoth(urlL, urlD, name, conc) {
  await oneRequest(urlL, name, "Warm up.");
  await oneRequest(urlD, name, "Warm up.");
  const L = [], D = [];
  for (let r = 0; r < reps; r++) {
    if (r % 2 === 0) {
      L.push(await round(urlL, name, conc, r));
      D.push(await round(urlD, name, conc, r));
    } else {
      D.push(await round(urlD, name, conc, r));
      L.push(await round(urlL, name, conc, r));
    }
  }
  return { L: summary(L, conc), D: summary(D, conc) };
}

function start(cmd, argv) {
  const p = spawn(cmd, argv, { stdio: ["ignore", "ignore", "pipe"] });
  let err = ""; p.stderr.on("data", (d) => { err = (err + d).slice(-4000); });
  p.on("exit", (c) => { if (c) console.error(`${cmd} exited ${c}: ${err}`); });
  return p;
}

const portL = 18000 + Math.floor(Math.random() * 1000), portD = portL + 1;
const name = path.basename(model, ".gguf");
const ls = start(llamaServer, ["-m", model, "--host", "127.0.0.1", "--port", String(portL), "-np", String(slots),
  "-c", String(ctx * slots), "-t", String(threads), "-b", "512", "-ub", "512", "--no-webui", "-ngl", "0"]);
const dv = start(drover, ["serve", "--model", model, "--host", "127.0.0.1", "--port", String(portD),
  "--parallel", String(slots), "--ctx", String(ctx), "--threads", String(threads)]);
try {
  await waitUp(`http://127.0.0.1:${portL}`);
  await waitUp(`http://127.0.0.1:${portD}`);
  const rows = [];
  for (const conc of [1, 4]) {
    const { L, D } = await measureBoth(`http://127.0.0.1:${portL}`, `http://127.0.0.1:${portD}`, name, conc);
    rows.push({ conc, L, D });
  }
  console.log(`model ${name}, ${nGen} tokens/request, ${reps} reps, ${threads} threads, ${slots} slots each`);
  console.log(`${"streams".padEnd(8)} ${"server".padEnd(13)} ${"gen tok/s".padStart(10)} ${"ttft p50 ms".padStart(12)} ${"e2e ms".padStart(9)}  ${"tok/s ratio".padStart(11)} ${"ttft ratio".padStart(10)}`);
  for (const { conc, L, D } of rows) {
    const line = (n, x, r1, r2) => console.log(`${String(conc).padEnd(8)} ${n.padEnd(13)} ${x.tps.toFixed(1).padStart(10)} ${x.ttft.toFixed(2).padStart(12)} ${x.total.toFixed(1).padStart(9)}  ${r1.padStart(11)} ${r2.padStart(10)}`);
    line("llama-server", L, "1.00", "1.00");
    // ttft ratio: llama-server's time / drover's, so >= 1.00 means drover is as fast
    line("drover", D, (D.tps / L.tps).toFixed(2), (L.ttft / D.ttft).toFixed(2));
  }
} finally {
  ls.kill(); dv.kill();
}
