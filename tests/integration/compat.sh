# The official ollama and openai npm clients against drover serve.
. "$(dirname "$0")/lib.sh"
COMPAT=$SRCDIR/tests/compat
[ -d "$COMPAT/node_modules/ollama" ] && [ -d "$COMPAT/node_modules/openai" ] || {
  echo "FAIL: npm clients missing; run: (cd tests/compat && npm ci)"; exit 1; }
"$DROVER" serve --model "$DROVER_TEST_MODELS/stories260K.gguf" --port 0 --parallel 2 --ctx 256 \
  --threads 1 --no-ollama-store 2>"$T_TMP/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$T_TMP"' EXIT
for i in $(seq 100); do
  PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$T_TMP/serve.log")
  [ -n "$PORT" ] && break
  sleep 0.1
done
[ -n "$PORT" ] || { cat "$T_TMP/serve.log"; echo "FAIL: serve did not start"; exit 1; }
node "$COMPAT/compat.mjs" "http://127.0.0.1:$PORT" stories260K
