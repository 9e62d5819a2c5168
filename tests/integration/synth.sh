# drover synth: tiny random-weight models in every quantization read back with the
# requested shapes, are deterministic, and load and generate in drover serve.
. "$(dirname "$0")/lib.sh"
SHAPE='llama:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000'
QUANTS="q4_0 q4_k_m q5_k_m q8_0 f16"

declare -A QNAME=([q4_0]=Q4_0 [q4_k_m]=Q4_K_M [q5_k_m]=Q5_K_M [q8_0]=Q8_0 [f16]=F16)
declare -A FTYPE=([q4_0]=2 [q4_k_m]=15 [q5_k_m]=17 [q8_0]=7 [f16]=1)

for q in $QUANTS; do
  run_drover synth "$SHAPE" --quant "$q" -o "$T_TMP/t-$q.gguf"
  expect_rc 0 "synth $q"
  expect_out "^wrote $T_TMP/t-$q.gguf: llama $q" "synth $q says what it wrote"
  run_drover inspect --json "$T_TMP/t-$q.gguf"
  expect_rc 0 "inspect synth $q"
  if printf '%s' "$OUT" | Q="${QNAME[$q]}" FT="${FTYPE[$q]}" node -e '
    const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const want = {architecture: "llama", block_count: 2, embedding_length: 256, head_count: 4,
                  head_count_kv: 2, head_dim_k: 64, feed_forward_length: 512, vocab_size: 1000,
                  context_length: 4096, tokenizer: "llama", quantization: process.env.Q,
                  file_type: Number(process.env.FT), tensor_count: 2 * 9 + 3,
                  parameters: 1000 * 256 * 2 + 256 + 2 * (2 * 256 + 256 * 256 * 2 + 256 * 128 * 2 + 3 * 256 * 512)};
    for (const [k, v] of Object.entries(want))
      if (j[k] !== v) { console.error(k, "=", j[k], "want", v); process.exit(1); }
    const types = Object.fromEntries(j.tensor_types.map(t => [t.type, t.tensors]));
    if (types.f32 !== 5) { console.error("f32 tensors", types); process.exit(1); }
    const main = {Q4_0: "q4_0", Q4_K_M: "q4_K", Q5_K_M: "q5_K", Q8_0: "q8_0", F16: "f16"}[process.env.Q];
    if (!(types[main] > 0)) { console.error("no", main, "tensors", types); process.exit(1); }
  '; then pass; else fail "synth $q: inspect --json fields"; fi
done

# same seed, same bytes, whatever the thread count; another seed, other weights
run_drover synth "$SHAPE" --quant q4_k_m --threads 1 -o "$T_TMP/again.gguf"
expect_rc 0 "synth again with one thread"
cmp -s "$T_TMP/t-q4_k_m.gguf" "$T_TMP/again.gguf" && pass || fail "same seed gives different bytes"
[ "$(sha256sum <"$T_TMP/t-q4_k_m.gguf")" = "$(sha256sum <"$T_TMP/again.gguf")" ] && pass ||
  fail "same seed gives a different sha256"
run_drover synth "$SHAPE" --quant q4_k_m --seed 2 -o "$T_TMP/seed2.gguf"
expect_rc 0 "synth --seed 2"
# compare the weights (the last 500 KB), not only the metadata that names the seed
[ "$(tail -c 500000 "$T_TMP/t-q4_k_m.gguf" | sha256sum)" != "$(tail -c 500000 "$T_TMP/seed2.gguf" | sha256sum)" ] &&
  pass || fail "another seed gives the same weights"
[ "$(stat -c %s "$T_TMP/t-q4_k_m.gguf")" = "$(stat -c %s "$T_TMP/seed2.gguf")" ] && pass ||
  fail "another seed changes the file size"

# qwen2 (q/k/v biases) and qwen3 (q/k norms, head_dim != embd/heads) load too
run_drover synth 'qwen2:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=700,tied=1' --quant f16 -o "$T_TMP/q2-f16.gguf"
expect_rc 0 "synth qwen2"
run_drover synth 'qwen3:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=700,head_dim=128' --quant f16 --ctx 2048 -o "$T_TMP/q3-f16.gguf"
expect_rc 0 "synth qwen3"
# qwen3moe: router + 3-D expert tensors, which llama.cpp runs
run_drover synth 'qwen3moe:layers=2,embd=256,heads=4,kv_heads=2,head_dim=64,ff=512,vocab=700,experts=8,experts_used=2,expert_ff=128' --quant q4_k_m -o "$T_TMP/moe-q4_k_m.gguf"
expect_rc 0 "synth qwen3moe"
run_drover inspect "$T_TMP/moe-q4_k_m.gguf"
expect_out '^experts +8, 2 used per token$' "qwen3moe experts read back"
expect_out '^architecture +qwen3moe$' "qwen3moe architecture"
# gemma3: q/k norms, post-attention and post-FFN norms, a sliding window of 64
run_drover synth 'gemma3:layers=6,embd=256,heads=4,kv_heads=1,head_dim=64,ff=512,vocab=700,swa=64' --quant q8_0 -o "$T_TMP/g3-q8_0.gguf"
expect_rc 0 "synth gemma3"
run_drover inspect "$T_TMP/g3-q8_0.gguf"
expect_out '^sliding window +64$' "gemma3 window read back"
# gemma4: gemma4:26b's layout, small: 5 sliding layers (2 kv heads of 64) to 1
# global (1 kv head of 128, K as V), a dense FFN beside 2 of 8 experts
G4='gemma4:layers=6,embd=256,heads=4,kv_heads=2,head_dim=64,global_kv_heads=1,global_head_dim=128,ff=384,vocab=700,experts=8,experts_used=2,expert_ff=96,swa=64'
run_drover synth "$G4" --quant q4_k_m -o "$T_TMP/g4-q4_k_m.gguf"
expect_rc 0 "synth gemma4"
run_drover inspect "$T_TMP/g4-q4_k_m.gguf"
expect_out '^architecture +gemma4$' "gemma4 architecture"
expect_out '^kv heads +2 sliding, 1 global$' "gemma4 kv heads per layer read back"
expect_out '^head dim +64 sliding, 128 global$' "gemma4 head sizes read back"
expect_out '^layers +5 sliding, 1 global$' "gemma4 sliding layers read back"
expect_out '^experts +8, 2 used per token$' "gemma4 experts read back"
# fit reads the per-layer shapes: 1 global layer of 1 x 128 for K and V in f16
# grows with the context; 5 sliding ones of 2 x 64 hold 64 + 512 cells, padded
run_drover fit "$T_TMP/g4-q4_k_m.gguf" --ctx 2048 --json
expect_rc 0 "fit gemma4"
if printf '%s' "$OUT" | node -e '
    const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const want = {kv_bytes_per_token: 128 * 2 * 2, kv_bytes: 128 * 2 * 2 * 2048 + 5 * (2 * 64 * 2 * 2) * 768};
    for (const [k, v] of Object.entries(want))
      if (j[k] !== v) { console.error(k, "=", j[k], "want", v); process.exit(1); }
  '; then pass; else fail "fit gemma4: per-layer KV"; fi
# phi3: fused qkv and gate+up, partial rotary, Phi-3's chat tokens in the vocabulary
run_drover synth 'phi3:layers=2,embd=256,heads=4,kv_heads=2,ff=512,vocab=1000,rot=48,tied=1' --quant q4_k_m -o "$T_TMP/phi-q4_k_m.gguf"
expect_rc 0 "synth phi3"
run_drover inspect "$T_TMP/phi-q4_k_m.gguf"
expect_out '^rope +dim 48' "phi3 partial rotary read back"
run_drover inspect "$T_TMP/q3-f16.gguf"
expect_out '^head dim +128$' "qwen3 head dim"
expect_out '^context +2048$' "--ctx is written"

# Load and generate every quantization through llama.cpp. (scripts/setup builds
# ggml without its AMX kernels, which crashed on quantized weights here.)
generate() { # generate FILE MODEL
  "$DROVER" serve --model "$1" --port 0 --ctx 256 --parallel 1 --threads 2 --no-ollama-store \
    --log-level info 2>"$T_TMP/serve.log" &
  local pid=$! port= i
  for i in $(seq 100); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$T_TMP/serve.log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  BODY=$(curl -s -m 60 -o - -w '\n%{http_code}' "http://127.0.0.1:$port/api/generate" \
    -H 'content-type: application/json' \
    -d "{\"model\":\"$2\",\"prompt\":\"hello world\",\"stream\":false,\"options\":{\"temperature\":0,\"num_predict\":8}}")
  CODE=${BODY##*$'\n'}
  BODY=${BODY%$'\n'*}
  SHOW=$(curl -s -m 10 "http://127.0.0.1:$port/api/show" -d "{\"model\":\"$2\"}")
  kill "$pid" 2>/dev/null
  wait "$pid"
  SERVE_RC=$?
}
for f in t-q4_0 t-q4_k_m t-q5_k_m t-q8_0 t-f16 q2-f16 q3-f16 moe-q4_k_m g3-q8_0 g4-q4_k_m phi-q4_k_m; do
  generate "$T_TMP/$f.gguf" "$f"
  if [ "$CODE" = 200 ] && printf '%s' "$BODY" | node -e '
      const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
      process.exit(j.done === true && j.eval_count === 8 && j.response.length > 0 ? 0 : 1)' 2>/dev/null; then
    pass
  else
    fail "generate from $f: HTTP $CODE, serve exit $SERVE_RC: $BODY $(tail -3 "$T_TMP/serve.log")"
  fi
  # /api/show's model_info carries the shape sizing needs (drover doctor reads it)
  want=
  case $f in
  moe-q4_k_m) want='i["qwen3moe.expert_count"] === 8 && i["qwen3moe.expert_used_count"] === 2 && i["qwen3moe.expert_feed_forward_length"] === 128' ;;
  g3-q8_0) want='i["gemma3.attention.sliding_window"] === 64 && i["gemma3.attention.key_length"] === 64' ;;
  t-q4_0) want='i["llama.vocab_size"] > 0 && i["llama.feed_forward_length"] > 0 && !("llama.expert_count" in i)' ;;
  esac
  if [ -n "$want" ]; then
    if printf '%s' "$SHOW" | node -e "const i = JSON.parse(require('fs').readFileSync(0, 'utf8')).model_info; process.exit($want ? 0 : 1)" 2>/dev/null; then
      pass
    else
      fail "/api/show of $f lacks its shape: $SHOW"
    fi
  fi
done

# errors: one line, the right exit status
run_drover synth qwen3:9b -o "$T_TMP/x.gguf"
expect_rc 1 "unknown name"
expect_lines 1 "$ERR" "unknown name: one line"
expect_err "^drover synth: unknown model 'qwen3:9b'; did you mean: .*qwen3:8b" "unknown name lists close matches"
[ ! -e "$T_TMP/x.gguf" ] && pass || fail "unknown name left a file"
run_drover synth "$SHAPE" -o "$T_TMP/no/such/dir/x.gguf"
expect_rc 1 "unwritable output"
expect_lines 1 "$ERR" "unwritable output: one line"
expect_err "^drover synth: cannot write $T_TMP/no/such/dir/x.gguf: No such file" "unwritable output names the path"
run_drover synth 'llama:layers=2,embd=256' -o "$T_TMP/x.gguf"
expect_rc 2 "bad SHAPE"
expect_lines 1 "$ERR" "bad SHAPE: one line"
expect_err "^drover synth: SHAPE lacks 'heads='" "bad SHAPE says what is missing"
run_drover synth "$SHAPE" --quant q3_k -o "$T_TMP/x.gguf"
expect_rc 2 "bad --quant"
expect_err "unknown quantization 'q3_k'" "bad --quant is named"
run_drover synth "$SHAPE"
expect_rc 2 "missing -o"
expect_err "missing -o FILE" "missing -o is named"
run_drover synth -o "$T_TMP/x.gguf"
expect_rc 2 "missing NAME"

run_drover synth --list
expect_rc 0 "--list"
expect_out '^smollm2:135m +llama +30 +576 +9 +3 +64 +1536 +49152 ' "--list shows smollm2:135m"
expect_out '^qwen2.5:3b +qwen2 +36 +2048 ' "--list shows qwen2.5:3b"
expect_out '^qwen3:8b +qwen3 ' "--list shows qwen3:8b"
expect_out '^gemma4:26b +gemma4 +30 +2816 +16 +8 +256 +2112 +262144 ' "--list shows gemma4:26b"

finish
