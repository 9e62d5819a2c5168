// bench/gateway-overhead.mjs — what a drover gateway adds in front of a node, beside
// nginx as a plain reverse proxy to the same node, in one run (issue #6, Speed).
//
// usage: node bench/gateway-overhead.mjs [MODEL.gguf] [--quick] [-t NODE_THREADS]
//   MODEL         default ../shared/models/stories260K.gguf: tiny and fast, so what
//                 the proxy costs is not hidden behind generation time
//   --quick       a third of the slices (about 45 s instead of about 2.5 min)
//   -t N          the node's --threads (default 1; see "threads" below)
//   --only W      one workload alone, e.g. --only "generate c1" (while tuning)
//   --floor       two more targets: bench/relay-floor.c, the least a relay on drover's
//                 fixed libraries costs (libmicrohttpd + libcurl, passing bytes: "floor";
//                 re-encoding both JSON bodies with jansson: "floorjs"; libmicrohttpd
//                 alone, a bare socket behind it: "floorrw"; and that with jansson:
//                 "floorrj"). Non-streaming workloads
//                 only (these relays pass an answer on whole). Needs cc.
// needs: build/drover (make build) and Debian's nginx (apt-get install nginx-light,
// or scripts/setup --with-reference).
//
// Three targets carry the same load to one node (drover serve, loopback):
//   direct  the node itself;
//   drover  a drover gateway ([fleet] local = no, one [node] of kind drover);
//   nginx   nginx as a typical reverse proxy: an upstream block with keepalive 64,
//           proxy_http_version 1.1 with the Connection header cleared (so upstream
//           connections are reused, as every keepalive setup needs), proxy_buffering
//           off (tokens pass as they come, as a streaming API needs), worker_processes
//           auto as Debian ships it, and no access log (a drover gateway logs nothing
//           per request either). Started from here with a generated config in a temp
//           dir: nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'.
// Four workloads, /api/generate at temperature 0: short non-streaming requests
// (num_predict 8) and streaming ones (num_predict 128), each at 1 and 32 concurrent
// clients (Node's http with a keep-alive Agent, one socket per client).
//
// Drift. This machine is shared: other work comes and goes within seconds and moves
// a stories260K node by tens of percent. So each workload is cut into many short
// slices (a few hundred ms each); a slice runs every target once, back to back, in
// an order that cycles through all six permutations. The p50 a proxy adds, and its
// throughput against direct, are taken within each slice (the targets saw the same
// machine) and the median over slices is reported, with its interquartile range
// for how much the slices disagree. p99 needs more samples than a slice has: it is
// pooled over all slices.
//
// Prints per workload and target: latency p50/p99, TTFT p50 (streaming), requests/s,
// streamed tokens/s, and CPU ms per request of the client, the proxy and the node
// (from /proc: where the time goes). Then what each proxy adds over direct, and the
// targets: drover's added p50 <= 1.5 x nginx's, drover's streaming tokens/s >= 0.95 x
// direct — PASS or MISS each. Exits 0 whatever the targets say. Before measuring, a
// null server (canned answers, no model) shows how fast this client alone can go:
// its ceiling should be far above what it measures.
//
// threads: on a small machine the node's llama.cpp threads, the proxy and the client
// share the cores. With a thread per core, any CPU the proxy or client takes preempts
// one decode thread and the others wait for it at the next barrier, so a few
// microseconds of proxy work cost milliseconds of generation. -t 1 (the default) keeps
// a core for the proxy and the client, so the numbers measure the proxy rather than
// that amplification; -t 2 on a 2-core machine shows it.
import { spawn, execFileSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import http from "node:http";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";
import { argv, drover, root, waitUp } from "./common.mjs";

// ------------------------------------------------------------- null server (child)
// `--null-server PORT`: canned /api/generate answers the size of the node's, so the
// client's own ceiling can be measured without any model or proxy in the way.
function nullServer() {
  const tok = (i) => JSON.stringify({ model: "stories260K", created_at: new Date().toISOString(),
    response: i % 2 ? " little" : " a", done: false }) + "\n";
  const last = (n) => JSON.stringify({ model: "stories260K", created_at: new Date().toISOString(), response: "",
    done: true, done_reason: "length", total_duration: 1, prompt_eval_count: 5, prompt_eval_duration: 1,
    eval_count: n, eval_duration: 1 }) + "\n";
  http.createServer({ keepAliveTimeout: 60000 }, (req, res) => {
    let body = "";
    req.on("data", (d) => { body += d; });
    req.on("end", () => {
      if (req.method !== "POST") { res.end("ok"); return; }
      const j = JSON.parse(body), n = j.options?.num_predict ?? 8;
      if (j.stream === false) {
        const s = last(n).replace('"response":""', '"response":", there was a little girl"');
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(s) });
        res.end(s);
        return;
      }
      // One write per token, a turn of the event loop apart, so each reaches the
      // client as its own chunk the way a node's tokens do.
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      let i = 0;
      const more = () => {
        if (i === n) return res.end(last(n));
        res.write(tok(i++));
        setImmediate(more);
      };
      more();
    });
  }).listen(+process.argv[3], "127.0.0.1");
  process.on("SIGTERM", () => process.exit(0));
}

// ------------------------------------------------------------------------- main
async function main() {
  const { args, opt } = argv();
  const quick = args.includes("--quick");
  const nodeThreads = +opt("-t", 1);
  const only = opt("--only", ""); // e.g. "generate c1": that workload alone (while tuning)
  const floor = args.includes("--floor");
  const positional = args.filter((a) => a !== "--quick" && a !== "--floor"); // after opt() took its options out
  const model = path.resolve(positional[0] || path.join(root, "../shared/models/stories260K.gguf"));
  const name = path.basename(model, ".gguf");
  for (const need of [drover, model])
    if (!fs.existsSync(need)) { console.error(`missing ${need} (make build; the model: MODEL.gguf argument)`); process.exit(1); }
  const nginx = ["nginx", "/usr/sbin/nginx"].find((c) => { try { execFileSync(c, ["-v"], { stdio: "ignore" }); return true; } catch { return false; } });
  if (!nginx) {
    console.error("missing nginx: install Debian's with `apt-get install nginx-light` (or scripts/setup --with-reference)");
    process.exit(1);
  }

  // A slice sends perSlice requests to each target (split among the clients);
  // about 0.1-0.2 s for the short workloads, ~1 s at 32 streams (one wave of them).
  const div = quick ? 3 : 1;
  const workloads = [
    { id: "generate c1", stream: false, nPredict: 8, conc: 1, perSlice: 30, slices: 30 / div },
    { id: "generate c32", stream: false, nPredict: 8, conc: 32, perSlice: 128, slices: 30 / div },
    { id: "stream c1", stream: true, nPredict: 128, conc: 1, perSlice: 4, slices: 36 / div },
    { id: "stream c32", stream: true, nPredict: 128, conc: 32, perSlice: 32, slices: 24 / div },
  ].filter((w) => !only || w.id === only);
  if (!workloads.length) { console.error(`--only: no workload "${only}"`); process.exit(1); }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "drover-gwbench-"));
  fs.chmodSync(dir, 0o755); // nginx workers may run as another user and must reach their temp paths
  // below the ephemeral range (32768-), where outgoing connections take ports
  const base = 20000 + Math.floor(Math.random() * 12000);
  const port = { direct: base, drover: base + 1, nginx: base + 2, null: base + 3, floor: base + 4, floorjs: base + 5, floorrw: base + 6, floorrj: base + 7 };
  const url = (p) => `http://127.0.0.1:${p}`;
  const procs = [];
  const extraTargets = [];
  const stopAll = () => { for (const p of procs) if (p.exitCode === null) p.kill("SIGTERM"); };
  process.on("SIGINT", () => { stopAll(); process.exit(130); });

  try {
    // --------------------------------------------------------------- servers
    const node = start(procs, drover, ["serve", "--model", model, "--host", "127.0.0.1", "--port", String(port.direct),
      "--no-ollama-store", "--threads", String(nodeThreads)], "node");
    const gwConf = path.join(dir, "gateway.conf");
    fs.writeFileSync(gwConf, `[fleet]\nlocal = no\nmax_queue = 256\n[node n1]\nurl = ${url(port.direct)}\nkind = drover\nmax_concurrent = 64\n`);
    const ngx = startNginx(procs, nginx, dir, port.nginx, port.direct);
    const nul = start(procs, process.execPath, [new URL(import.meta.url).pathname, "--null-server", String(port.null)], "null server");
    await waitUp(url(port.direct));
    // the gateway learns the node's models from its first poll: start it once the node answers
    const gw = start(procs, drover, ["serve", "--host", "127.0.0.1", "--port", String(port.drover), "--config", gwConf], "gateway");
    await waitUpAny(url(port.nginx));
    await waitUpAny(url(port.null));
    if (floor) {
      // the same fixed libraries with nothing of drover's: a lower bound for a relay
      const bin = path.join(dir, "relay-floor");
      execFileSync("cc", ["-O2", "-o", bin, path.join(root, "bench/relay-floor.c"), "-lmicrohttpd", "-lcurl", "-ljansson"]);
      for (const [id, extra] of [["floor", []], ["floorjs", ["json"]], ["floorrw", ["raw"]], ["floorrj", ["rawjson"]]]) {
        const p = start(procs, bin, [String(port[id]), url(port.direct), ...extra], id);
        await waitUpAny(url(port[id])).catch((e) => { throw new Error(`${e.message}: exit ${p.exitCode} ${p.signalCode} ${p.errTail()}`); });
        // non-streaming workloads only: the floor relays answer whole (and raw reads
        // Content-Length answers only)
        extraTargets.push({ id, port: port[id], pids: () => [p.pid], noStream: true });
      }
    }

    const targets = [
      { id: "direct", port: port.direct, pids: () => [] },
      { id: "drover", port: port.drover, pids: () => [gw.pid] },
      { id: "nginx", port: port.nginx, pids: () => [ngx.pid, ...childrenOf(ngx.pid)] },
      ...extraTargets,
    ];
    for (const t of targets) t.agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

    // The gateway may not be there yet (a drover without [node] support serves no
    // models): then it is left out and said so, and the rest still runs.
    let gwNote = "";
    try {
      await waitUp(url(port.drover), 15);
      const r = await once(targets[1], { model: name, prompt: "Once upon a time", stream: false, options: { num_predict: 8, temperature: 0 } });
      if (!r.tokens) throw new Error("answered with no tokens");
    } catch (e) {
      gwNote = `drover gateway not measured: ${e.message}${gw.exitCode !== null ? ` (exited ${gw.exitCode}: ${gw.errTail().trim().split("\n").pop()})` : ""}`;
      targets.splice(1, 1);
    }

    // ----------------------------------------------------------- client ceiling
    const nullTarget = { id: "null", port: port.null, pids: () => [], agent: new http.Agent({ keepAlive: true, maxSockets: 32 }) };
    const ceiling = {};
    for (const w of workloads) {
      await round(nullTarget, w, name, w.conc, 0, node.pid);
      ceiling[w.id] = await round(nullTarget, w, name, w.perSlice * (w.stream ? 16 : 8), 0, node.pid);
    }
    nul.kill("SIGTERM");

    // ------------------------------------------------------------------ slices
    const serves = (t, w) => !(w.stream && t.noStream);
    const orders = permutations(targets);
    const t0 = performance.now();
    const res = {}; // res[workload][slice][target] = that slice's round
    for (const w of workloads) {
      for (const t of targets.filter((x) => serves(x, w))) await round(t, w, name, w.conc, 1e6, node.pid); // warm-up: open keep-alive connections
      res[w.id] = [];
      for (let sl = 0; sl < w.slices; sl++) {
        const slice = {};
        for (const t of orders[sl % orders.length].filter((x) => serves(x, w)))
          slice[t.id] = await round(t, w, name, w.perSlice, 1e4 * (sl + 1), node.pid);
        res[w.id].push(slice);
      }
    }
    const elapsed = (performance.now() - t0) / 1000;

    // ------------------------------------------------------------------ report
    report({ name, nodeThreads, elapsed, workloads, targets, res, ceiling, gwNote });
  } finally {
    stopAll();
    await sleep(200);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------- processes
function start(procs, cmd, args, label) {
  const p = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  p.stderr.on("data", (d) => { err = (err + d).slice(-4000); });
  p.errTail = () => err;
  p.on("exit", (c, sig) => { if (c && sig !== "SIGTERM") console.error(`${label} (${cmd}) exited ${c}: ${err.slice(-1000)}`); });
  procs.push(p);
  return p;
}

function startNginx(procs, nginx, dir, listen, upstream) {
  for (const d of ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]) fs.mkdirSync(path.join(dir, d));
  fs.writeFileSync(path.join(dir, "nginx.conf"), `# generated by bench/gateway-overhead.mjs: a plain reverse proxy
worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    upstream node {
        server 127.0.0.1:${upstream};
        keepalive 64;
    }
    server {
        listen 127.0.0.1:${listen};
        location / {
            proxy_pass http://node;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_read_timeout 300s;
        }
    }
}
`);
  return start(procs, nginx, ["-p", dir, "-c", path.join(dir, "nginx.conf"), "-e", path.join(dir, "error.log"), "-g", "daemon off;"], "nginx");
}

// Any HTTP answer at all (nginx and the null server have no /health of their own to trust).
async function waitUpAny(u, seconds = 20) {
  for (let i = 0; i < seconds * 10; i++) {
    try { await fetch(u + "/health"); return; } catch {}
    await sleep(100);
  }
  throw new Error(`${u} did not come up`);
}

function childrenOf(pid) {
  const out = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      if (+s.slice(s.lastIndexOf(")") + 2).split(" ")[1] === pid) out.push(+e);
    } catch {}
  }
  return out;
}

const clkTck = (() => { try { return +execFileSync("getconf", ["CLK_TCK"]).toString() || 100; } catch { return 100; } })();
// CPU time that the processes PIDS have used so far, two ways: `stat` (ms, from
// /proc/PID/stat: every thread, dead ones too, but in clock ticks) and `run` (ms,
// the sum of /proc/PID/task/*/schedstat: nanoseconds, but live threads only).
function cpuMs(pids) {
  let stat = 0, run = 0;
  for (const pid of pids) {
    try {
      const st = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
      stat += ((+f[11] + +f[12]) * 1000) / clkTck;
      for (const tid of fs.readdirSync(`/proc/${pid}/task`))
        run += +fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0] / 1e6;
    } catch {}
  }
  return { stat, run };
}
// The CPU ms used between two cpuMs readings: the precise one, unless threads that
// ended in between took more than the ticks' rounding can hide.
function cpuDelta(a, b, nPids) {
  const run = b.run - a.run, stat = b.stat - a.stat;
  return stat - run > (2 * nPids * 1000) / clkTck ? stat : run;
}

function permutations(xs) {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

// ---------------------------------------------------------------------- client
// One /api/generate through target T: end-to-end ms, TTFT ms (first non-empty
// token line), tokens generated (the node's eval_count).
function once(t, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const t0 = performance.now();
    const rq = http.request({ host: "127.0.0.1", port: t.port, path: "/api/generate", method: "POST", agent: t.agent,
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(data) } }, (res) => {
      let ttft = 0, buf = "", tokens = 0;
      res.setEncoding("utf8");
      res.on("data", (d) => {
        if (res.statusCode !== 200) { buf += d; return; }
        if (!body.stream) { buf += d; return; }
        buf += d;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!line) continue;
          // Only the first token and the last line need parsing.
          if (!ttft && !line.includes('"response":""')) ttft = performance.now() - t0;
          if (line.includes('"done":true')) tokens = JSON.parse(line).eval_count || 0;
        }
      });
      res.on("end", () => {
        const total = performance.now() - t0;
        if (res.statusCode !== 200) return reject(new Error(`${t.id}: HTTP ${res.statusCode} ${buf.slice(0, 200)}`));
        if (!body.stream) {
          try { tokens = JSON.parse(buf).eval_count || 0; } catch (e) { return reject(new Error(`${t.id}: bad JSON ${buf.slice(0, 200)}`)); }
        }
        resolve({ total, ttft, tokens });
      });
      res.on("error", reject);
    });
    rq.on("error", (e) => reject(new Error(`${t.id}: ${e.message}`)));
    rq.end(data);
  });
}

// N requests of workload W through target T by W.conc clients, prompts numbered
// from SEED (the same numbers for every target). Returns the samples and the CPU
// each party used.
async function round(t, w, model, n, seed, nodePid) {
  const lat = [], ttft = [];
  let tokens = 0, next = 0;
  const pids = t.pids(), c0 = process.cpuUsage(), p0 = cpuMs(pids), n0 = cpuMs([nodePid]);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(w.conc, n) }, async () => {
    while (next < n) {
      const i = next++;
      const r = await once(t, { model, prompt: `Once upon a time ${seed + i}, there was`, stream: w.stream,
        options: { num_predict: w.nPredict, temperature: 0 } });
      lat.push(r.total);
      if (w.stream) ttft.push(r.ttft);
      tokens += r.tokens;
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { lat, ttft, tokens, n, wall, cpuClient: (c.user + c.system) / 1000,
           cpuProxy: cpuDelta(p0, cpuMs(pids), pids.length), cpuNode: cpuDelta(n0, cpuMs([nodePid]), 1) };
}

// --------------------------------------------------------------------- report
function pct(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function pool(rounds) {
  const lat = rounds.flatMap((r) => r.lat), ttft = rounds.flatMap((r) => r.ttft);
  const sum = (k) => rounds.reduce((a, r) => a + r[k], 0);
  const n = sum("n"), wall = sum("wall");
  return { n, p50: pct(lat, 50), p99: pct(lat, 99), ttft50: pct(ttft, 50), ttft99: pct(ttft, 99),
           rps: n / wall, tps: sum("tokens") / wall, tokPerReq: sum("tokens") / n,
           cpuClient: sum("cpuClient") / n, cpuProxy: sum("cpuProxy") / n, cpuNode: sum("cpuNode") / n };
}

function report({ name, nodeThreads, elapsed, workloads, targets, res, ceiling, gwNote }) {
  const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "-");
  const cols = (...xs) => xs.map(([v, w]) => (w < 0 ? String(v).padEnd(-w) : String(v).padStart(w))).join(" ");
  console.log(`gateway overhead: model ${name}, node --threads ${nodeThreads}, ${os.cpus().length} CPUs, ` +
    `${elapsed.toFixed(0)} s of measuring; slices (each target once, order cycling): ` +
    workloads.map((w) => `${w.id} ${w.slices} x ${w.perSlice}`).join(", "));
  if (gwNote) console.log(gwNote);

  console.log("\nclient alone (null server, no model, no proxy): its ceiling");
  for (const w of workloads) {
    const c = pool([ceiling[w.id]]);
    console.log(`  ${w.id.padEnd(13)} ${f(c.rps, 0).padStart(7)} req/s` + (w.stream ? ` ${f(c.tps, 0).padStart(8)} tok/s` : "".padEnd(15)) +
      `   client cpu ${f(c.cpuClient, 3)} ms/req`);
  }

  console.log("\nall slices pooled\n" + cols(["workload", -13], ["target", -7], ["reqs", 5], ["p50 ms", 8], ["p99 ms", 8], ["ttft p50", 9],
    ["req/s", 8], ["tok/s", 8], ["tok/req", 7], ["  cpu ms/req: client", 20], ["proxy", 7], ["node", 7]));
  const S = {};
  for (const w of workloads) {
    S[w.id] = {};
    for (const t of targets.filter((x) => res[w.id][0][x.id])) {
      const s = (S[w.id][t.id] = pool(res[w.id].map((sl) => sl[t.id])));
      console.log(cols([w.id, -13], [t.id, -7], [s.n, 5], [f(s.p50), 8], [f(s.p99), 8], [w.stream ? f(s.ttft50) : "-", 9],
        [f(s.rps, 1), 8], [f(s.tps, 0), 8], [f(s.tokPerReq, 1), 7], [f(s.cpuClient, 3), 20],
        [t.id === "direct" ? "-" : f(s.cpuProxy, 3), 7], [f(s.cpuNode, 3), 7]));
    }
  }
  // The client is a limit when it keeps a core busy (or comes near its ceiling).
  for (const w of workloads) {
    const d = S[w.id].direct, core = (d.cpuClient * d.rps) / 10, ceil = (d.rps / pool([ceiling[w.id]]).rps) * 100;
    if (core > 50 || ceil > 75)
      console.log(`note: ${w.id}: against direct the client used ${core.toFixed(0)} % of a core and reached ${ceil.toFixed(0)} % of its ceiling: it may limit it`);
  }

  // Within-slice comparisons against direct: median over slices and quartiles.
  const paired = (w, p, fn) => {
    const xs = res[w.id].map((sl) => fn(sl[p], sl.direct)).filter(Number.isFinite);
    return { mid: pct(xs, 50), lo: pct(xs, 25), hi: pct(xs, 75) };
  };
  const addP50 = (w, p) => paired(w, p, (a, d) => pct(a.lat, 50) - pct(d.lat, 50));
  const addTtft = (w, p) => paired(w, p, (a, d) => pct(a.ttft, 50) - pct(d.ttft, 50));
  const thru = (w, p) => paired(w, p, (a, d) => (w.stream ? a.tokens / a.wall / (d.tokens / d.wall) : a.n / a.wall / (d.n / d.wall)));
  const q = (x, d) => `${f(x.mid, d)} [${f(x.lo, d)}, ${f(x.hi, d)}]`;

  const proxies = targets.filter((t) => t.id !== "direct").map((t) => t.id);
  console.log("\nadded over direct: p50 and TTFT p50 as the median of in-slice differences [quartiles], ms;\n" +
    "p99 from all slices pooled, ms; throughput (tok/s streaming, req/s otherwise) / direct, in-slice median [quartiles]");
  console.log(cols(["workload", -13], ["proxy", -7], ["latency p50", 24], ["p99", 9], ["TTFT p50", 24], ["throughput / direct", 24]));
  for (const w of workloads)
    for (const p of proxies.filter((x) => S[w.id][x]))
      console.log(cols([w.id, -13], [p, -7], [q(addP50(w, p), 3), 24], [f(S[w.id][p].p99 - S[w.id].direct.p99, 2), 9],
        [w.stream ? q(addTtft(w, p), 3) : "-", 24], [q(thru(w, p), 3), 24]));

  console.log("\ntargets (issue #6): drover's added p50 <= 1.5 x nginx's; drover's streaming tok/s >= 0.95 x direct");
  if (!proxies.includes("drover")) { console.log("  (no drover gateway measured: no targets judged)"); return; }
  const verdict = (ok) => (ok ? "PASS" : "MISS");
  // When nginx adds nothing measurable (<= 0: within noise), drover must not either.
  const judge = (label, d, n) => {
    const ratio = n > 0 ? d / n : NaN;
    const ok = n > 0 ? ratio <= 1.5 : d <= 0;
    console.log(`  ${label.padEnd(30)} drover ${f(d, 3).padStart(7)} ms  nginx ${f(n, 3).padStart(7)} ms  ratio ${(n > 0 ? f(ratio) : "n/a").padStart(6)}  ${verdict(ok)}`);
  };
  for (const w of workloads) {
    judge(`${w.id}: added latency p50`, addP50(w, "drover").mid, addP50(w, "nginx").mid);
    if (w.stream) judge(`${w.id}: added TTFT p50`, addTtft(w, "drover").mid, addTtft(w, "nginx").mid);
  }
  for (const w of workloads.filter((x) => x.stream)) {
    const r = thru(w, "drover").mid, rn = thru(w, "nginx").mid;
    console.log(`  ${(w.id + ": tok/s / direct").padEnd(30)} drover ${f(r, 3).padStart(7)}     nginx ${f(rn, 3).padStart(7)}                  ${verdict(r >= 0.95)}`);
  }
}

// Last, so that every module-level constant above is initialized.
if (process.argv[2] === "--null-server") nullServer();
else await main();
