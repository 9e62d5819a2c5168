# drover fit on a real GGUF, on catalog names against a written hardware profile,
# unknown names, bad usage and --json.
. "$(dirname "$0")/lib.sh"
M=$DROVER_TEST_MODELS/stories260K.gguf

# a machine with 16 GiB of RAM measured at 40 GB/s and an 8 GiB GPU
cat > "$T_TMP/hw.json" <<'JSON'
{"version": 1,
 "cpu": {"model": "Test CPU", "sockets": 1, "cores": 8, "threads": 16, "features": ["avx2"],
         "l2_bytes": 8388608, "l3_bytes": 16777216},
 "memory": {"total_bytes": 17179869184, "available_bytes": 17179869184,
            "swap_total_bytes": 0, "swap_free_bytes": 0, "bandwidth_gbps": 40.0},
 "devices": [
   {"name": "CPU", "description": "Test CPU", "type": "cpu",
    "memory_total_bytes": 17179869184, "memory_free_bytes": 17179869184},
   {"name": "CUDA0", "description": "Test GPU 8 GB", "type": "gpu",
    "memory_total_bytes": 8589934592, "memory_free_bytes": 8589934592}]}
JSON
# the same machine without its GPU
sed '/CUDA0/,$d' "$T_TMP/hw.json" | sed '$ s/},$/}]}/' > "$T_TMP/cpu.json"

run_drover fit "$M"
expect_rc 0 "fit stories260K on this machine"
expect_out '^kv cache +640 B per token \(f16\), 4096 ctx x 1 seq' "stories KV per token"
expect_out '^CPU +5 +yes ' "all 5 blocks and the output on the CPU row"
expect_out '^fits +yes' "stories fits"
expect_out 'tok/s \(roofline, 30-75 % of [0-9.]+ GB/s measured\)' "roofline from a measured bandwidth"

run_drover fit llama3.2:1b-q4_0 --hw "$T_TMP/hw.json"
expect_rc 0 "fit llama3.2:1b-q4_0 --hw"
expect_out '^model +llama3.2:1b \(llama, Q4_0, 16 blocks\)' "model line"
expect_out '^kv cache +32.00 KiB per token' "llama3.2:1b KV per token"
expect_out '^CUDA0 +16 +yes ' "16 blocks and the output on the GPU"
expect_out '^fits +yes: all 17/17 layers on GPU' "fits fully"

run_drover fit llama3.2:1b-q4_0 --hw "$T_TMP/cpu.json" --ctx 2048
expect_rc 0 "fit on the CPU-only profile"
[ "$(printf '%s\n' "$OUT" | grep -c '^CUDA0')" -eq 0 ] && pass || fail "no GPU row: $OUT"
expect_out '~[0-9.]+-[0-9.]+ tok/s \(roofline, 30-75 % of 40.0 GB/s measured\)' "CPU roofline"

run_drover fit qwen2.5:14b-q8_0 --hw "$T_TMP/hw.json"
expect_rc 0 "fit 14b q8_0"
expect_out '^fits +partly: [0-9]+/49 layers on GPU \(n_gpu_layers = [0-9]+\)' "14b partly on the GPU"
expect_out 'GPU bandwidth unknown' "no invented GPU bandwidth"

# the GPU's bandwidth as 'drover hw' measures it: GPU tok/s from it, said to be
# measured, and the profile keeps it through hw --check --json
sed 's/"memory_free_bytes": 8589934592}]}/"memory_free_bytes": 8589934592, "bandwidth_gbps": 400.0, "bandwidth_measured": true}]}/' \
  "$T_TMP/hw.json" > "$T_TMP/gpubw.json"
run_drover fit llama3.1:8b --hw "$T_TMP/gpubw.json"
expect_rc 0 "fit with a measured GPU bandwidth"
expect_out '~[0-9.]+-[0-9.]+ tok/s \(roofline, 40-80 % of CUDA0 400.0 GB/s measured\)' \
  "GPU roofline from the measured bandwidth"
run_drover hw --check "$T_TMP/gpubw.json"
expect_out '^  CUDA0 +gpu .*\(400 GB/s measured\)$' "hw shows the measured GPU bandwidth"
run_drover hw --check "$T_TMP/gpubw.json" --json
printf '%s\n' "$OUT" > "$T_TMP/gpubw2.json"
run_drover fit llama3.1:8b --hw "$T_TMP/gpubw2.json" --json
if printf '%s' "$OUT" | node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const g = j.devices[1];
  if (g.bandwidth_gbps !== 400 || g.bandwidth_measured !== true) process.exit(1);
  if (!(j.generation.tok_s_low > 0 && j.generation.tok_s_low < j.generation.tok_s_high)) process.exit(1);
'; then pass; else fail "measured GPU bandwidth through hw --json and back: $OUT"; fi

run_drover fit llama3.1:70b --hw "$T_TMP/hw.json"
expect_rc 0 "fit 70b (does not fit is not an error)"
expect_out '^fits +no$' "70b does not fit 16 GiB + 8 GiB"
expect_out '^CPU .*TOO BIG$' "the host row says why"

# gemma4: 25 sliding layers (8 kv heads of 256) hold their 1024-token window,
# only the 5 global ones (2 kv heads of 512, K and V) grow: 20 KiB a token
run_drover fit gemma4:26b --hw "$T_TMP/hw.json"
expect_rc 0 "fit gemma4:26b"
expect_out '^model +gemma4:26b \(gemma4, Q4_K_M, 30 blocks\)' "gemma4 model line"
expect_out '^kv cache +20.00 KiB per token \(f16\), 4096 ctx x 1 seq = 380.00 MiB$' "gemma4 KV"
expect_out 'sliding window 1024: 25 of 30 layers keep only the window' "gemma4 sliding layers"
expect_out '^fits +partly: [0-9]+/31 layers on GPU' "gemma4 partly on an 8 GiB GPU"

run_drover fit qwen2.5:7b --ctx 65536 --hw "$T_TMP/hw.json"
expect_out '^would fit +all on GPU with --ctx [0-9]+$' "smaller context suggested"

run_drover fit llama3.1:8b --hw "$T_TMP/hw.json" --json
expect_rc 0 "fit --json"
if printf '%s' "$OUT" | node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const bad = [];
  if (j.kv_bytes_per_token !== 131072) bad.push("kv_bytes_per_token " + j.kv_bytes_per_token);
  if (j.fit !== "gpu") bad.push("fit " + j.fit);
  if (j.gpu_layers !== 33) bad.push("gpu_layers " + j.gpu_layers);
  if (j.devices.length !== 2 || j.devices[1].layers !== 32) bad.push("devices");
  if (j.model.layer_bytes.length !== 32) bad.push("layer_bytes");
  if (j.generation.tok_s_high !== null) bad.push("invented GPU speed");
  if (bad.length) { console.error(bad.join(", ")); process.exit(1); }
'; then pass; else fail "--json fields"; fi

run_drover fit "$M" --json --hw "$T_TMP/cpu.json"
if printf '%s' "$OUT" | node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const sum = j.model.layer_bytes.reduce((a, b) => a + b, 0) + j.model.token_embd_bytes + j.model.output_bytes;
  if (j.kv_bytes_per_token !== 640 || sum !== 292800 * 4 || j.model.weights_bytes !== 292800 * 4) process.exit(1);
  if (!(j.generation.tok_s_low > 0 && j.generation.tok_s_low < j.generation.tok_s_high)) process.exit(1);
'; then pass; else fail "stories --json: $OUT"; fi

# unknown names: one line with close matches, exit 1
run_drover fit qwen3:9b --hw "$T_TMP/hw.json"
expect_rc 1 "unknown catalog name"
expect_lines 1 "$ERR" "unknown name: one line"
expect_err "^drover fit: qwen3:9b: unknown model 'qwen3:9b'; did you mean: .*qwen3:8b" "close matches"
run_drover fit llama3.2:1b-q3_k --hw "$T_TMP/hw.json"
expect_rc 1 "unknown quantization"
printf 'not gguf' > "$T_TMP/bad.gguf"
run_drover fit "$T_TMP/bad.gguf" --hw "$T_TMP/hw.json"
expect_rc 1 "not a GGUF"
expect_lines 1 "$ERR" "bad GGUF: one line"
printf '{"version": 1}' > "$T_TMP/bad.json"
run_drover fit "$M" --hw "$T_TMP/bad.json"
expect_rc 1 "bad profile"
expect_err 'cpu' "bad profile names the missing field"

# bad usage: exit 2
run_drover fit
expect_rc 2 "no model"
run_drover fit "$M" "$M"
expect_rc 2 "two models"
run_drover fit "$M" --kv q5_1
expect_rc 2 "bad --kv"
run_drover fit "$M" --ctx 0
expect_rc 2 "bad --ctx"
run_drover fit "$M" --parallel x
expect_rc 2 "bad --parallel"
run_drover fit "$M" --bogus
expect_rc 2 "unknown option"
run_drover fit --help
expect_rc 0 "--help"
expect_out '^usage: drover fit MODEL' "usage"

finish
