# drover recommend on an 8 GB laptop's profile (picks, avoid list, JSON), on this
# machine, on this machine's own profile (hw --json -> recommend --hw / fit --hw),
# bad profiles and bad usage.
. "$(dirname "$0")/lib.sh"

# 16 GiB RAM at 40 GB/s, an RTX 3070 Laptop GPU: 8 GiB at 448 GB/s
cat > "$T_TMP/laptop.json" <<'JSON'
{"version": 1,
 "cpu": {"model": "Laptop CPU", "sockets": 1, "cores": 8, "threads": 16, "features": ["avx2"],
         "l2_bytes": 8388608, "l3_bytes": 16777216},
 "memory": {"total_bytes": 17179869184, "available_bytes": 17179869184,
            "swap_total_bytes": 0, "swap_free_bytes": 0, "bandwidth_gbps": 40.0},
 "devices": [
   {"name": "CPU", "description": "Laptop CPU", "type": "cpu",
    "memory_total_bytes": 17179869184, "memory_free_bytes": 17179869184},
   {"name": "CUDA0", "description": "NVIDIA GeForce RTX 3070 Laptop GPU", "type": "gpu",
    "memory_total_bytes": 8589934592, "memory_free_bytes": 8589934592, "bandwidth_gbps": 448}]}
JSON

run_drover recommend --hw "$T_TMP/laptop.json"
expect_rc 0 "recommend --hw laptop"
expect_out '^fast memory +8.00 GiB VRAM; planned with 4096 tokens of context' "fast memory line"
expect_out "40-80 % of CUDA0's 448 GB/s" "the GPU's bandwidth from the profile"
expect_out '^fastest useful +llama3.2:1b q4_0 \(1.24B parameters\)$' "fastest useful pick"
expect_out '^best quality +mistral-nemo:12b q4_k_m \(12.2B parameters\)$' "best quality pick"
expect_out '^daily driver +qwen3:8b q4_k_m \(8.19B parameters\)$' "daily driver pick"
expect_out '^ +[0-9.]+ GiB weights; [0-9.]+ GiB of the 8.00 GiB VRAM with 4096 ctx, all 41 layers on the GPU; ctx up to 4096; ~[0-9.]+-[0-9.]+ tok/s predicted$' \
  "the numbers behind the best-quality pick"
expect_out '^ +why: the most parameters at q4_k_m that still generate >= 15 tok/s \(predicted\) and fit 16384 tokens' \
  "the daily driver's reason"
expect_out '^avoid$' "avoid section"
expect_out '^  qwen3:14b q4_k_m: [0-9.]+ GiB of weights .* does not fit 8.00 GiB VRAM: [0-9]+ of 41 layers on the GPU, the rest on the CPU -> ~[0-9.]+-[0-9.]+ tok/s$' \
  "a 14B spills onto the CPU"
expect_out '^  llama3.1:70b q4_k_m: .* does not fit this machine at all' "70B does not fit"
if printf '%s\n' "$OUT" | grep -q '^notes'; then fail "notes with a full profile: $OUT"; else pass; fi

run_drover recommend --hw "$T_TMP/laptop.json" --json
expect_rc 0 "recommend --json"
printf '%s' "$OUT" > "$T_TMP/rec.json"
if node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const bad = [];
  if (j.fast_memory.kind !== "gpu" || j.fast_memory.bytes !== 8589934592) bad.push("fast_memory");
  if (j.context !== 4096 || j.kv_type !== "f16") bad.push("context");
  if (j.thresholds.best_quality_tok_s !== 5 || j.thresholds.daily_driver_tok_s !== 15) bad.push("thresholds");
  const want = { fastest_useful: ["llama3.2:1b", "q4_0"], best_quality: ["mistral-nemo:12b", "q4_k_m"],
                 daily_driver: ["qwen3:8b", "q4_k_m"] };
  for (const [role, [m, q]] of Object.entries(want)) {
    const p = j.picks[role];
    if (!p || p.model !== m || p.quantization !== q) { bad.push(role); continue; }
    if (!p.fits || p.fit !== "gpu" || p.fast_memory_bytes > 8589934592) bad.push(role + " fit");
    if (!(p.tok_s.low > 0 && p.tok_s.low < p.tok_s.judged && p.tok_s.judged < p.tok_s.high)) bad.push(role + " tok_s");
    if (p.tok_s.source !== "predicted" || p.tok_s.measured !== null) bad.push(role + " source");
    if (!(p.max_context >= 4096) || typeof p.why !== "string") bad.push(role + " why");
  }
  if (j.picks.best_quality.tok_s.judged < 5) bad.push("best quality below 5 tok/s");
  if (j.picks.daily_driver.max_context < 16384) bad.push("daily driver context");
  if (!j.avoid.length || !j.avoid.every(a => a.model && a.quantization && a.reason)) bad.push("avoid");
  if (j.candidates.length < 100) bad.push("candidates " + j.candidates.length);
  // no candidate that fits is bigger than the best-quality pick and fast enough
  const q = j.picks.best_quality;
  if (j.candidates.some(c => c.fits && c.params > q.params && c.tok_s.judged >= 5)) bad.push("a better best quality");
  if (bad.length) { console.error(bad.join(", ")); process.exit(1); }
' "$T_TMP/rec.json"; then pass; else fail "recommend --json fields"; fi

# without the GPU's bandwidth: a note instead of invented speeds
sed 's/, "bandwidth_gbps": 448//' "$T_TMP/laptop.json" > "$T_TMP/nobw.json"
run_drover recommend --hw "$T_TMP/nobw.json"
expect_rc 0 "recommend without the GPU's bandwidth"
expect_out "CUDA0's bandwidth unknown" "says the bandwidth is unknown"
expect_out '^  the GPU.s memory bandwidth is not in the profile' "note"
expect_out '^best quality +mistral-nemo:12b q4_k_m' "sizes still decide"

# a longer context: the 12B no longer fits 8 GB
run_drover recommend --hw "$T_TMP/laptop.json" --ctx 32768 --kv q8_0
expect_rc 0 "recommend --ctx 32768 --kv q8_0"
expect_out 'planned with 32768 tokens of context, q8_0 KV' "context and KV type used"
if printf '%s\n' "$OUT" | grep -q '^best quality +mistral-nemo:12b'; then
  fail "12B with 32K context on 8 GB: $OUT"; else pass; fi

# this machine: no GPU here, the fewest bytes per token is fastest
run_drover recommend
expect_rc 0 "recommend on this machine"
expect_out '^machine +.*[0-9] cores, ' "machine line"
expect_out '^fast memory +[0-9.]+ GiB RAM \(no GPU\)' "RAM is the fast memory"
expect_out '^speed +roofline at 30-75 % of the CPU.s [0-9.]+ GB/s' "measured bandwidth"
expect_out '^fastest useful +llama3.2:1b q4_0 ' "fastest useful here"
expect_out '^ +[0-9.]+ MiB weights; [0-9.]+ GiB of the [0-9.]+ GiB RAM with 4096 ctx, in RAM; ctx up to 131072; ~[0-9.]+-[0-9.]+ tok/s predicted$' \
  "numbers for the pick"
expect_out '^daily driver +[^ ]+ q4_k_m ' "a daily driver at q4_k_m"
expect_out '^avoid$' "avoid section here"

# the profile round trip: hw --json -> recommend --hw, fit --hw
run_drover hw --json
expect_rc 0 "hw --json"
printf '%s\n' "$OUT" > "$T_TMP/here.json"
run_drover hw --hw "$T_TMP/here.json" --json
expect_rc 0 "hw --hw reads its own profile"
if [ "$OUT" = "$(cat "$T_TMP/here.json")" ]; then pass; else fail "hw --hw round trip differs"; fi
run_drover recommend --hw "$T_TMP/here.json" --json
expect_rc 0 "recommend --hw of this machine's profile"
printf '%s' "$OUT" > "$T_TMP/here-rec.json"
run_drover fit llama3.2:1b-q4_0 --hw "$T_TMP/here.json" --json
expect_rc 0 "fit --hw of this machine's profile"
printf '%s' "$OUT" > "$T_TMP/here-fit.json"
if node -e '
  const fs = require("fs");
  const hw = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  const rec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const fit = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
  const bad = [];
  if (rec.fast_memory.kind !== "ram" || rec.fast_memory.bytes !== hw.memory.available_bytes) bad.push("fast memory");
  if (!rec.machine.includes(hw.memory.bandwidth_gbps.toFixed(1) + " GB/s")) bad.push("machine " + rec.machine);
  const p = rec.picks.fastest_useful;
  // the same plan as fit: bytes, and the roofline at the profile s bandwidth
  if (p.model !== "llama3.2:1b" || p.quantization !== "q4_0") bad.push("pick " + p.model);
  if (p.total_bytes !== fit.total_bytes) bad.push("total " + p.total_bytes + " vs fit " + fit.total_bytes);
  if (Math.abs(p.tok_s.low - fit.generation.tok_s_low) > 1e-3 * fit.generation.tok_s_low) bad.push("tok/s");
  if (Math.abs(fit.generation.tok_s_high * fit.generation.bytes_per_token / 1e9 - 0.75 * hw.memory.bandwidth_gbps) > 0.01 * hw.memory.bandwidth_gbps) bad.push("roofline");
  if (bad.length) { console.error(bad.join(", ")); process.exit(1); }
' "$T_TMP/here.json" "$T_TMP/here-rec.json" "$T_TMP/here-fit.json"; then pass; else
  fail "recommend --hw and fit --hw agree with the profile"; fi

# bad profiles name the field; unknown options and combinations are usage errors
sed 's/, "available_bytes": 17179869184,/,/' "$T_TMP/laptop.json" > "$T_TMP/noavail.json"
run_drover recommend --hw "$T_TMP/noavail.json"
expect_rc 1 "profile without memory.available_bytes"
expect_err "^drover recommend: $T_TMP/noavail.json: memory.available_bytes: missing$" "names the field"
expect_lines 1 "$ERR" "one line"
sed 's/"bandwidth_gbps": 448/"bandwidth_gbps": "fast"/' "$T_TMP/laptop.json" > "$T_TMP/badbw.json"
run_drover recommend --hw "$T_TMP/badbw.json"
expect_rc 1 "bad device bandwidth"
expect_err 'devices\[1\].bandwidth_gbps: must be a number > 0 or null' "names the device field"
run_drover recommend --hw "$T_TMP/missing.json"
expect_rc 1 "missing profile"
run_drover recommend --measure --hw "$T_TMP/laptop.json"
expect_rc 2 "--measure with --hw"
run_drover recommend --ctx 0
expect_rc 2 "--ctx 0"
run_drover recommend --kv q5_1
expect_rc 2 "bad --kv"
run_drover recommend --measure-max lots
expect_rc 2 "bad --measure-max"
run_drover recommend extra
expect_rc 2 "an argument"
run_drover recommend --bogus
expect_rc 2 "unknown option"
run_drover recommend --help
expect_rc 0 "--help"
expect_out '^usage: drover recommend' "usage"

# --measure with a limit under every pick: nothing is synthesized, and it says so
XDG_CACHE_HOME=$T_TMP/cache run_drover recommend --measure --measure-max 0.5b
expect_rc 0 "--measure under the limit"
expect_out 'not measured: over --measure-max 500M parameters' "says why not measured"
if [ -e "$T_TMP/cache/drover/recommend" ] && [ -n "$(ls -A "$T_TMP/cache/drover/recommend")" ]; then
  fail "wrote models it did not measure"; else pass; fi

finish
