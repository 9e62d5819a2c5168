# Routing "fastest": of two nodes with the same model, the one that is
# measurably faster gets more of the work. The slow node (nice 10) shares its
# one CPU with two busy loops (about 20x slower here); the fast one has a CPU of
# its own. Both load the model before the loops start: at nice 19, or loading
# under the loops, one request took from seconds to minutes.
. "$(dirname "$0")/lib.sh"
M=$DROVER_TEST_MODELS/stories260K.gguf
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T_TMP"' EXIT
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs: skipped"; exit 0; }

node_up() { # node_up NAME CPU NICE : drover serve pinned to CPU; leaves ${NAME}_PORT
  local name=$1 cpu=$2 log=$T_TMP/$1.log p=
  taskset -c "$cpu" nice -n "$3" "$DROVER" serve --port 0 --model "$M" --ctx 512 --threads 1 \
    --no-ollama-store 2>"$log" &
  PIDS+=($!)
  for _ in $(seq 100); do
    p=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$p" ] && break
    sleep 0.1
  done
  [ -n "$p" ] || { cat "$log" >&2; return 1; }
  printf -v "${name}_PORT" '%s' "$p"
}
node_up fast 0 0 && node_up slow 1 10 || { fail "nodes did not start"; finish; exit 1; }
for p in "$fast_PORT" "$slow_PORT"; do # the model loaded on both
  curl -s -o /dev/null "http://127.0.0.1:$p/api/generate" -H 'content-type: application/json' \
    -d '{"model":"stories260K","prompt":"Once","stream":false,"options":{"num_predict":1}}'
done
# two busy loops share the slow node's CPU with it
for _ in 1 2; do taskset -c 1 sh -c 'while :; do :; done' & PIDS+=($!); done

cat >"$T_TMP/fleet.conf" <<EOF
[fleet]
route = fastest
health_interval = 1s
local = no
history = $T_TMP/none.db
[node slow]
url = http://127.0.0.1:$slow_PORT
kind = drover
[node fast]
url = http://127.0.0.1:$fast_PORT
kind = drover
EOF
start_serve "$T_TMP/gw.log" --config "$T_TMP/fleet.conf" || { fail "gateway"; finish; exit 1; }
PIDS+=("$PID")
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T_TMP"' EXIT

declare -A n=([fast]=0 [slow]=0)
for i in $(seq 16); do
  node=$(curl -s -D - -o /dev/null "$U/api/generate" -H 'content-type: application/json' \
    -d '{"model":"stories260K","prompt":"Once upon a time","stream":false,"options":{"num_predict":64,"temperature":0}}' |
    tr -d '\r' | sed -n 's/^[Xx]-[Dd]rover-[Nn]ode: //p')
  n[$node]=$((${n[$node]:-0} + 1))
  [ "$i" = 2 ] && sleep 1.2 # the health poll sees both models loaded
done
echo "fast ${n[fast]}, slow ${n[slow]}"
curl -s "$U/api/drover/nodes" | node -e "const j=JSON.parse(require('fs').readFileSync(0,'utf8')); for (const n of j.nodes) console.log(n.name, JSON.stringify(n.models))"
[ "${n[fast]}" -ge 12 ] && pass || fail "fastest sent ${n[fast]} of 16 to the fast node, ${n[slow]} to the slow one"
finish
