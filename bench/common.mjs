// bench/common.mjs — what the bench scripts share: paths, arguments, the default
// model, the reference tools, physical cores, waiting for a server, medians.
import { execFileSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import path from "node:path";
import fs from "node:fs";
import os from "node:os";

export const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
export const drover = path.join(root, "build/drover");
export const prefix = execFileSync(path.join(root, "scripts/setup"), ["--print-prefix"]).toString().trim();

// The reference tool NAME (llama-server, llama-bench) of the same llama.cpp release;
// exits with how to build it when missing.
export function reference(name) {
  const f = path.join(prefix, "bin", name);
  for (const need of [f, drover])
    if (!fs.existsSync(need)) { console.error(`missing ${need} (run: scripts/setup --with-reference; make build)`); process.exit(1); }
  return f;
}

// Takes "-x VALUE" options out of argv; what is left are the positional arguments.
export function argv() {
  const args = process.argv.slice(2);
  const opt = (name, def) => {
    const i = args.indexOf(name);
    if (i < 0) return def;
    const v = args[i + 1];
    args.splice(i, 2);
    return v;
  };
  return { args, opt };
}

// MODEL, or llama3.2:1b at Q4_0 synthesized once into ~/.cache/drover/bench
// (random weights generate at the real model's speed).
export function modelOrDefault(arg) {
  if (arg) return path.resolve(arg);
  const dir = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "drover/bench");
  fs.mkdirSync(dir, { recursive: true });
  const model = path.join(dir, "llama3.2-1b-q4_0.gguf");
  if (!fs.existsSync(model)) {
    console.error(`synthesizing ${model} (once)`);
    execFileSync(drover, ["synth", "llama3.2:1b", "--quant", "q4_0", "-o", model], { stdio: "inherit" });
  }
  return model;
}

// Physical cores: what drover uses by default, and so what llama.cpp's tools get too.
export function physicalCores() {
  const info = fs.readFileSync("/proc/cpuinfo", "utf8").split("\n\n");
  const cores = new Set(info.filter((b) => b.includes("core id")).map((b) =>
    (b.match(/physical id\s*:\s*(\d+)/) || [0, 0])[1] + ":" + b.match(/core id\s*:\s*(\d+)/)[1]));
  return cores.size || os.cpus().length;
}

export async function waitUp(url, seconds = 60) {
  for (let i = 0; i < seconds * 10; i++) {
    try { if ((await fetch(url + "/health")).ok) return; } catch {}
    await sleep(100);
  }
  throw new Error(`${url} did not come up`);
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
