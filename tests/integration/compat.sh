# The official ollama and openai npm clients against drover serve.
. "$(dirname "$0")/lib.sh"
COMPAT=$SRCDIR/tests/compat
[ -d "$COMPAT/node_modules/ollama" ] && [ -d "$COMPAT/node_modules/openai" ] || {
  echo "FAIL: npm clients missing; run: (cd tests/compat && npm ci)"; exit 1; }
start_serve "$T_TMP/serve.log" --model "$DROVER_TEST_MODELS/stories260K.gguf" --parallel 2 \
  --ctx 256 --threads 1 --no-ollama-store || { echo "FAIL: serve did not start"; exit 1; }
node "$COMPAT/compat.mjs" "$U" stories260K
