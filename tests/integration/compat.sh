# The official ollama and openai npm clients against drover serve.
. "$(dirname "$0")/lib.sh"
COMPAT=$SRCDIR/tests/compat
[ -d "$COMPAT/node_modules/ollama" ] && [ -d "$COMPAT/node_modules/openai" ] || {
  echo "FAIL: npm clients missing; run: (cd tests/compat && npm ci)"; exit 1; }
start_serve "$T_TMP/serve.log" --model "$DROVER_TEST_MODELS/stories260K.gguf" --parallel 2 \
  --ctx 256 --threads 1 --no-ollama-store || { echo "FAIL: serve did not start"; exit 1; }
node "$COMPAT/compat.mjs" "$U" stories260K || exit 1
NODE=$U
# the same clients through a gateway, in front of the node's Ollama API and then
# of its OpenAI API (the gateway translates both ways)
for kind in drover openai; do
  printf '[fleet]\nlocal = no\n[node n]\nurl = %s\nkind = %s\n' "$NODE" "$kind" >"$T_TMP/gw.conf"
  "$DROVER" serve --port 0 --config "$T_TMP/gw.conf" 2>"$T_TMP/gw-$kind.log" &
  GW=$!
  GP=
  for _ in $(seq 100); do
    GP=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$T_TMP/gw-$kind.log")
    [ -n "$GP" ] && break
    sleep 0.1
  done
  [ -n "$GP" ] || { echo "FAIL: gateway ($kind) did not start"; cat "$T_TMP/gw-$kind.log"; exit 1; }
  echo "through a gateway, node kind $kind:"
  if [ "$kind" = openai ]; then
    COMPAT_NO_DETAILS=1 node "$COMPAT/compat.mjs" "http://127.0.0.1:$GP" stories260K || { kill $GW; exit 1; }
  else
    node "$COMPAT/compat.mjs" "http://127.0.0.1:$GP" stories260K || { kill $GW; exit 1; }
  fi
  kill $GW; wait $GW 2>/dev/null
done
