# drover inspect on real models, on damaged files and on things that are not GGUF.
. "$(dirname "$0")/lib.sh"
M=$DROVER_TEST_MODELS/stories260K.gguf

run_drover inspect "$M"
expect_rc 0 "inspect stories260K"
expect_out '^architecture +llama$' "architecture"
expect_out '^blocks +5$' "blocks"
expect_out '^embedding +64$' "embedding"
expect_out '^heads +8$' "heads"
expect_out '^kv heads +4$' "kv heads"
expect_out '^context +2048$' "context"
expect_out '^vocabulary +512 tokens, llama tokenizer$' "vocab"
expect_out '^quantization +F32' "quantization"
expect_out '^parameters +293K \(292800\)$' "parameters"
expect_out '^chat template +no$' "chat template"

run_drover inspect --json "$M"
expect_rc 0 "inspect --json"
if printf '%s' "$OUT" | node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const want = {architecture: "llama", block_count: 5, embedding_length: 64, head_count: 8,
                head_count_kv: 4, context_length: 2048, vocab_size: 512, quantization: "F32",
                parameters: 292800, tokenizer: "llama", chat_template: false, tensor_count: 48};
  for (const [k, v] of Object.entries(want))
    if (j[k] !== v) { console.error(k, "=", j[k], "want", v); process.exit(1); }
  if (j.tensor_types.length !== 1 || j.tensor_types[0].type !== "f32" ||
      j.tensor_types[0].bytes !== 292800 * 4) { console.error("tensor_types", j.tensor_types); process.exit(1); }
'; then pass; else fail "--json fields"; fi

run_drover inspect "$DROVER_TEST_MODELS/llama-2-tiny-random.gguf"
expect_rc 0 "inspect tiny random"
expect_out '^vocabulary +32000 tokens' "tiny vocab"

# damaged and wrong inputs: exit 1, exactly one line on stderr, nothing on stdout
head -c 1000 "$M" > "$T_TMP/cut1000.gguf"
head -c 600000 "$M" > "$T_TMP/cut-in-data.gguf"
: > "$T_TMP/empty.gguf"
printf 'GGUF\003\000\000\000\377\377\377\377\377\377\377\377' > "$T_TMP/huge-count.gguf"
mkdir "$T_TMP/dir.gguf"
for f in "$T_TMP/cut1000.gguf" "$T_TMP/cut-in-data.gguf" "$T_TMP/empty.gguf" \
         "$T_TMP/huge-count.gguf" /etc/passwd "$T_TMP/dir.gguf" "$T_TMP/missing.gguf"; do
  run_drover inspect "$f"
  expect_rc 1 "inspect $f"
  expect_lines 1 "$ERR" "inspect $f: one line on stderr"
  expect_err "^drover inspect: $f: " "inspect $f names the file"
  [ -z "$OUT" ] && pass || fail "inspect $f printed on stdout: $OUT"
done
run_drover inspect "$T_TMP/cut-in-data.gguf"
expect_err 'truncated' "cut in tensor data says truncated"
run_drover inspect /etc/passwd
expect_err 'not a GGUF file' "/etc/passwd is not GGUF"
run_drover inspect "$T_TMP/dir.gguf"
expect_err 'directory' "a directory says so"
run_drover inspect "$T_TMP/missing.gguf"
expect_err 'No such file' "missing file says so"

run_drover inspect
expect_rc 2 "inspect without a file"
run_drover inspect "$M" "$M"
expect_rc 2 "inspect with two files"

finish
