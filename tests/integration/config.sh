# drover serve reads drover.conf: [serve] settings, [alias] names, clear errors.
. "$(dirname "$0")/lib.sh"
M=$DROVER_TEST_MODELS/stories260K.gguf
mkdir -p "$T_TMP/xdg/drover"
cat > "$T_TMP/xdg/drover/drover.conf" <<CONF
# the default location: \$XDG_CONFIG_HOME/drover/drover.conf
[serve]
port = 0
parallel = 3
model = $M
log_level = info
ollama_store = no
kv_type = f16
[alias story]
model = stories260K
CONF
XDG_CONFIG_HOME=$T_TMP/xdg start_serve "$T_TMP/serve.log" --parallel 2 && pass ||
  { fail "serve with a config did not start"; finish; exit 1; }
tags=$(curl -s "$U/api/tags")
printf '%s' "$tags" | grep -q '"name":"story:latest"' && pass || fail "alias listed: $tags"
out=$(curl -s "$U/api/generate" -d '{"model":"story","prompt":"Once upon a time","stream":false,"options":{"temperature":0,"num_predict":6}}')
printf '%s' "$out" | grep -q '"response":", there was a little' && pass || fail "alias generates: $out"
printf '%s' "$out" | grep -q '"model":"story"' && pass || fail "the client's name is echoed: $out"
grep -q "2 slots" "$T_TMP/serve.log" && pass || fail "the command line (--parallel 2) wins over the file (3): $(cat "$T_TMP/serve.log")"
grep -q "KV cache f16" "$T_TMP/serve.log" && pass || fail "kv_type logged: $(cat "$T_TMP/serve.log")"
grep -q "threads 2 (physical cores)\|threads [0-9]* (physical cores)" "$T_TMP/serve.log" && pass || fail "threads default logged"
grep -q "no GPU: every layer on the CPU" "$T_TMP/serve.log" && pass || fail "gpu layers decision logged"
kill $PID; wait $PID

# a q8_0 KV cache needs head dims that are a multiple of 32; stories260K has 8:
# llama.cpp's reason reaches the client as a 500 and the server stays up
start_serve "$T_TMP/kv.log" --model "$M" --no-ollama-store --kv-type q8_0 || fail "serve --kv-type q8_0"
code=$(curl -s -o "$T_TMP/kv.out" -w '%{http_code}' "http://127.0.0.1:$PORT/api/generate" -d '{"model":"stories260K","prompt":"x","stream":false}')
[ "$code" = 500 ] && pass || fail "impossible KV type: HTTP $code"
grep -q "does not divide n_embd_head_k=8" "$T_TMP/kv.out" && pass || fail "llama.cpp's reason reaches the client: $(cat "$T_TMP/kv.out")"
[ "$(curl -s "http://127.0.0.1:$PORT/health")" = '{"status":"ok"}' ] && pass || fail "server up after a failed load"
kill $PID; wait $PID

printf '[serve]\nkv_type = q5_1\n' > "$T_TMP/kv.conf"
run_drover serve --config "$T_TMP/kv.conf"
expect_rc 1 "bad kv_type"
expect_err "kv-type wants f16\|q8_0\|q4_0" "bad kv_type says the choices"

printf '[serve]\nportt = 1\n' > "$T_TMP/bad.conf"
run_drover serve --config "$T_TMP/bad.conf"
expect_rc 1 "unknown setting"
expect_err "bad.conf: \[serve\] unknown setting 'portt'" "unknown setting is named"
printf '[serve]\nport = 1\n[broken\n' > "$T_TMP/syntax.conf"
run_drover serve --config "$T_TMP/syntax.conf"
expect_rc 1 "syntax error"
expect_err "syntax.conf: syntax error on line 3" "syntax error line"
printf '[alias x]\nmodel = no-such-model\n' > "$T_TMP/alias.conf"
run_drover serve --config "$T_TMP/alias.conf" --model "$M" --port 0 --no-ollama-store
expect_rc 1 "alias to an unknown model"
expect_err "no model named 'no-such-model'" "alias error says why"
run_drover serve --config "$T_TMP/missing.conf"
expect_rc 1 "a named config that is missing"
finish
