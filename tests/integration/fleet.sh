# The fleet gateway end to end: three drover nodes with the same model, one of
# them also reached as kind "openai", a scripted slow Ollama-API node, and
# drover serve --config in front of them.
. "$(dirname "$0")/lib.sh"
M=$DROVER_TEST_MODELS/stories260K.gguf
HERE=$(cd "$(dirname "$0")" && pwd)
PIDS=()
STOP_ALL='for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T_TMP"'
trap "$STOP_ALL" EXIT

# node NAME [PORT] [serve args...] : a drover node; leaves ${NAME}_PID, ${NAME}_PORT
node_up() {
  local name=$1 port=$2; shift 2
  local log=$T_TMP/$name.log
  "$DROVER" serve --port "$port" --model "$M" --ctx 512 --threads 1 --no-ollama-store "$@" 2>"$log" &
  local pid=$! p=
  PIDS+=("$pid")
  for _ in $(seq 100); do
    p=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$p" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$p" ] || { echo "node $name did not start:" >&2; cat "$log" >&2; return 1; }
  printf -v "${name}_PID" '%s' "$pid"
  printf -v "${name}_PORT" '%s' "$p"
}
fake_up() { # fake_up NAME ARGS... : the scripted node
  local name=$1; shift
  node "$HERE/fake_node.mjs" "$@" >"$T_TMP/$name.out" 2>&1 &
  local pid=$! p=
  PIDS+=("$pid")
  for _ in $(seq 100); do
    p=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$T_TMP/$name.out")
    [ -n "$p" ] && break
    sleep 0.1
  done
  [ -n "$p" ] || { echo "fake node $name did not start" >&2; return 1; }
  printf -v "${name}_PID" '%s' "$pid"
  printf -v "${name}_PORT" '%s' "$p"
}
# call METHOD URL [BODY [HEADER...]] : leaves $CODE, $BODY and $HDRS
call() {
  local method=$1 url=$2 body=${3:-}; shift 3 2>/dev/null || shift $#
  local h=() x
  for x in "$@"; do h+=(-H "$x"); done
  if [ -n "$body" ]; then
    BODY=$(curl -s -D "$T_TMP/hdrs" -o - -w '\n%{http_code}' -X "$method" "$url" \
      -H 'content-type: application/json' "${h[@]}" -d "$body")
  else
    BODY=$(curl -s -D "$T_TMP/hdrs" -o - -w '\n%{http_code}' -X "$method" "$url" "${h[@]}")
  fi
  CODE=${BODY##*$'\n'}
  BODY=${BODY%$'\n'*}
  HDRS=$(tr -d '\r' <"$T_TMP/hdrs")
}
# gateway NAME [ARGS...]: drover serve --config $T_TMP/NAME.conf (log NAME.log).
# start_serve's exit trap knows only its own process: this one stops (and
# first continues: a test stops one with SIGSTOP) every process started here.
gateway() {
  local name=$1; shift
  start_serve "$T_TMP/$name.log" --config "$T_TMP/$name.conf" "$@" || { fail "$name gateway did not start"; return 1; }
  PIDS+=("$PID")
  trap "$STOP_ALL" EXIT
}
served_by() { printf '%s\n' "$HDRS" | sed -n 's/^[Xx]-[Dd]rover-[Nn]ode: //p'; }
expect_code() { [ "$CODE" = "$1" ] && pass || fail "$2: HTTP $CODE, want $1: $BODY"; }
jq_check() { # jq_check JS_EXPR WHAT : JS with j = parsed $BODY
  if printf '%s' "$BODY" | node -e "const j=JSON.parse(require('fs').readFileSync(0,'utf8')); if(!($1)){process.exit(1)}"; then pass; else fail "$2: $BODY"; fi
}
GEN='{"model":"stories260K","prompt":"Once upon a time","stream":false,"options":{"num_predict":8,"temperature":0}}'

node_up a 0 && node_up b 0 && node_up c 0 || { fail "nodes did not start"; finish; exit 1; }
fake_up s --interval 50 --tokens 40 || { fail "fake node did not start"; finish; exit 1; }
fake_up s2 --interval 1 --tokens 4 --prefix copy- || { fail "fake node 2 did not start"; finish; exit 1; }
cat >"$T_TMP/fleet.conf" <<EOF
[fleet]
route = round-robin
health_interval = 1s
health_timeout = 1s
local = no
[node a]
url = http://127.0.0.1:$a_PORT
kind = drover
priority = 1
[node b]
url = http://127.0.0.1:$b_PORT
priority = 2
[node c]
url = http://127.0.0.1:$c_PORT
kind = drover
priority = 3
[node oa]
url = http://127.0.0.1:$a_PORT/
kind = openai
[node slow]
url = http://127.0.0.1:$s_PORT
kind = ollama
[node copy]
url = http://127.0.0.1:$s2_PORT
[think]
thinker = false
[alias tiny]
model = stories260K
EOF
gateway fleet || { finish; exit 1; }
G=$U

# ---- the union of the nodes' models, in both APIs ----
call GET "$G/api/tags"; expect_code 200 tags
jq_check 'j.models.filter(m => m.name === "stories260K:latest").length === 1 && j.models.some(m => m.name === "slow:latest")' "tags: the union, each name once"
call GET "$G/v1/models"
jq_check 'j.data.some(m => m.id === "stories260K:latest") && j.data.some(m => m.id === "slow:latest")' "v1/models: the union"
# /api/show: asked of a node that has the model (its full model_info); for one
# that no node can describe, what the listing knows, and no made-up zeros
call POST "$G/api/show" '{"model":"stories260K"}'
expect_code 200 "show through the gateway"
jq_check 'j.model_info["general.parameter_count"] === 292800 && j.model_info["llama.context_length"] === 2048 && j.model_info["llama.block_count"] === 5' "show: the node's model_info"
call POST "$G/api/show" '{"model":"slow"}'
expect_code 200 "show of a model only a node without /api/show has"
jq_check 'j.details.family === "llama" && !Object.values(j.model_info).includes(0)' "show: the listing's details, no zeros"
call POST "$G/api/show" '{"model":"nothing-here"}'
expect_code 404 "show of an unknown model"
call GET "$G/api/drover/nodes"
jq_check 'j.nodes.length === 6 && j.nodes.every(n => n.up) && j.nodes.find(n => n.name === "b").kind === "drover" && j.nodes.find(n => n.name === "copy").kind === "ollama"' "nodes: all up, kinds detected"

# ---- round-robin spreads requests over every node that has the model ----
declare -A seen=()
for i in $(seq 8); do
  call POST "$G/api/generate" "$GEN"
  [ "$CODE" = 200 ] || fail "round-robin request $i: HTTP $CODE $BODY"
  seen[$(served_by)]=1
done
[ "${#seen[@]}" -eq 4 ] && pass || fail "round-robin used ${!seen[*]}, want a b c oa"

# ---- translation: an Ollama client on an OpenAI node, an OpenAI client on an Ollama node ----
call POST "$G/api/chat" '{"model":"stories260K","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":6,"temperature":0}}' "X-Drover-Route: pinned=oa"
expect_code 200 "ollama chat via an openai node"
[ "$(served_by)" = oa ] && pass || fail "pinned=oa served by $(served_by)"
last=$(printf '%s\n' "$BODY" | grep -v '^$' | tail -n 1)
printf '%s' "$last" | node -e "const j=JSON.parse(require('fs').readFileSync(0,'utf8')); if(!(j.done===true && j.eval_count===6 && j.prompt_eval_count>0 && j.done_reason==='length')) process.exit(1)" \
  && pass || fail "ollama stream over openai: final stats: $last"
[ "$(printf '%s\n' "$BODY" | grep -c '"done":false')" -ge 2 ] && pass || fail "streamed token by token: $BODY"
call POST "$G/v1/chat/completions" '{"model":"stories260K","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}' "X-Drover-Route: pinned=b"
expect_code 200 "openai stream via a drover node"
[ "$(served_by)" = b ] && pass || fail "pinned=b served by $(served_by)"
printf '%s\n' "$BODY" | grep -q '^data: \[DONE\]' && printf '%s\n' "$BODY" | grep -q '"completion_tokens":5' \
  && pass || fail "openai stream: [DONE] and usage: $BODY"
call POST "$G/v1/completions" '{"model":"slow","prompt":"x","max_tokens":3}' "X-Drover-Route: pinned=slow"
jq_check 'j.choices[0].text.startsWith("t0 t1") && j.usage.completion_tokens === 40' "openai completion via the ollama-kind node"

# ---- embeddings through every node kind, in both APIs ----
ok=0
for i in 1 2 3 4; do
  call POST "$G/api/embed" '{"model":"stories260K","input":["hello","world"]}'
  [ "$CODE" = 200 ] && printf '%s' "$BODY" | node -e "const j=JSON.parse(require('fs').readFileSync(0,'utf8')); if(!(j.embeddings.length===2 && j.embeddings[0].length>0)) process.exit(1)" && ok=$((ok+1))
  call POST "$G/v1/embeddings" '{"model":"stories260K","input":"hello","encoding_format":"float"}'
  [ "$CODE" = 200 ] && printf '%s' "$BODY" | node -e "const j=JSON.parse(require('fs').readFileSync(0,'utf8')); if(!(j.data[0].embedding.length>0)) process.exit(1)" && ok=$((ok+1))
done
[ "$ok" -eq 8 ] && pass || fail "embeddings through the gateway: $ok of 8 ($BODY)"

# ---- the same GGUF under another name (architecture, size, quantization agree) ----
call POST "$G/api/generate" '{"model":"slow","prompt":"x","stream":false}' "X-Drover-Route: pinned=copy"
expect_code 200 "metadata match"
jq_check 'j.model === "slow" && j.response.startsWith("t0")' "answered under the client's name"
call GET "http://127.0.0.1:$s2_PORT/last"
jq_check 'j.model === "copy-slow:latest"' "sent under the node's own name"

# ---- an alias names the same model on every node ----
call POST "$G/api/generate" '{"model":"tiny","prompt":"Once","stream":false,"options":{"num_predict":3}}'
expect_code 200 "alias from config"
jq_check 'j.model === "tiny" && j.eval_count === 3' "alias answers under the client's name"
call GET "$G/api/ps"
jq_check 'j.models.length >= 3 && j.models.every(m => typeof m.drover_node === "string") && j.models.some(m => m.drover_node === "b")' "ps: loaded models with their node"

# ---- policies per request ----
call POST "$G/api/generate" "$GEN" "X-Drover-Route: priority"
[ "$(served_by)" = a ] && pass || fail "priority: served by $(served_by), want a"
call POST "$G/api/generate" "$GEN" "X-Drover-Route: nonsense"
expect_code 400 "unknown policy"
call POST "$G/api/generate" "$GEN" "X-Drover-Route: pinned=nobody"
expect_code 400 "pinned to an unknown node"

# ---- unknown model ----
call POST "$G/api/generate" '{"model":"no-such-model","prompt":"x"}'
expect_code 404 "unknown model"
jq_check 'j.error.includes("no-such-model")' "404 names the model"

# ---- think default from config; a thinking budget spent ----
call POST "$G/api/chat" '{"model":"thinker","messages":[{"role":"user","content":"q"}],"stream":false}' "X-Drover-Route: pinned=slow"
expect_code 200 "thinker"
printf '%s\n' "$HDRS" | grep -qi '^x-drover-warning: thinking-exhausted' && pass || fail "thinking-exhausted header: $HDRS"
jq_check 'j.done_reason === "length" && j.message.content === "" && j.drover_warning === "thinking-exhausted"' "thinking-exhausted marked"
call GET "http://127.0.0.1:$s_PORT/last"
jq_check 'j.think === false' "[think] thinker = false reached the node"
call GET "$G/metrics"
printf '%s\n' "$BODY" | grep -q 'drover_fleet_thinking_exhausted_total{node="slow",model="thinker:latest"} 1' \
  && pass || fail "metrics: thinking_exhausted counter"
printf '%s\n' "$BODY" | grep -q 'drover_fleet_requests_total{node="a",model="stories260K:latest"}' \
  && printf '%s\n' "$BODY" | grep -q 'drover_fleet_ttft_seconds_bucket{node="b"' && pass || fail "metrics: per node and model"

# ---- drover nodes (polls the config's nodes itself) ----
run_drover nodes --config "$T_TMP/fleet.conf"
expect_rc 0 "drover nodes"
expect_out '^a +drover' "nodes lists a"
expect_out '^slow +ollama +0\.12\.0 +up' "nodes shows kind, version, state"
expect_out 'thinker:latest' "nodes lists the models"

# ---- a client that hangs up mid-stream frees the node's slot ----
curl -s -m 0.5 "$G/api/generate" -H 'content-type: application/json' -H 'X-Drover-Route: pinned=slow' \
  -d '{"model":"slow","prompt":"x"}' >/dev/null
sleep 0.3
call GET "$G/api/drover/nodes"
jq_check 'j.nodes.find(n => n.name === "slow").in_flight === 0' "hang-up: the slot is free"
call GET "$G/metrics"
printf '%s\n' "$BODY" | grep -q '^drover_fleet_node_in_flight{node="slow"} 0' && pass || fail "metrics: in flight 0 after hang-up"

# ---- a node killed mid-stream: an error event, promptly, no done ----
( sleep 0.5; kill -9 "$s_PID" ) &
t0=$(date +%s%N)
call POST "$G/api/generate" '{"model":"slow","prompt":"x"}' "X-Drover-Route: pinned=slow"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_code 200 "mid-stream: the stream had started"
last=$(printf '%s\n' "$BODY" | grep -v '^$' | tail -n 1)
printf '%s' "$last" | grep -q '"error"' && ! printf '%s\n' "$BODY" | grep -q '"done":true' \
  && pass || fail "mid-stream death: error event, no done: $BODY"
[ "$ms" -lt 3000 ] && pass || fail "mid-stream death noticed after $ms ms"

# ---- a node killed before a request: the request goes elsewhere, invisibly ----
kill -9 "$c_PID"; wait "$c_PID" 2>/dev/null
ok=0
for i in $(seq 6); do
  call POST "$G/api/generate" "$GEN"
  [ "$CODE" = 200 ] && [ "$(served_by)" != c ] && ok=$((ok + 1))
done
[ "$ok" -eq 6 ] && pass || fail "requests after c died: $ok of 6 answered elsewhere"
call GET "$G/api/drover/nodes"
jq_check '!j.nodes.find(n => n.name === "c").up' "c is down"

# ---- the node comes back: it rejoins within the health interval ----
node_up c "$c_PORT" || fail "c restart"
sleep 2.5
call GET "$G/api/drover/nodes"
jq_check 'j.nodes.find(n => n.name === "c").up' "c rejoined"
call POST "$G/api/generate" "$GEN" "X-Drover-Route: pinned=c"
expect_code 200 "pinned to the rejoined node"

# ---- API keys ----
echo "s3cret-key" >"$T_TMP/keys"
cat >"$T_TMP/keyed.conf" <<EOF
[fleet]
api_keys_file = $T_TMP/keys
local = no
[node a]
url = http://127.0.0.1:$a_PORT
EOF
gateway keyed
call GET "$U/api/tags"; expect_code 401 "no key: 401"
call GET "$U/api/tags" "" "Authorization: Bearer wrong"; expect_code 401 "wrong key: 401"
call GET "$U/api/tags" "" "Authorization: Bearer s3cret-key"; expect_code 200 "right key: 200"
call POST "$U/v1/chat/completions" '{"model":"stories260K","messages":[{"role":"user","content":"x"}],"max_tokens":2}'
expect_code 401 "openai route needs the key"
jq_check 'j.error && j.error.type === "authentication_error"' "401 in the OpenAI error shape"
call GET "$U/health"; expect_code 200 "health stays open"
# a gateway in front of the keyed one sends its key upstream (detecting the
# node's kind with it, too), and logs it nowhere
K=$U
cat >"$T_TMP/chain.conf" <<EOF
[fleet]
local = no
[node keyed]
url = $K
api_key_file = $T_TMP/keys
EOF
gateway chain --host 0.0.0.0 --log-level debug
grep -q "listens on 127.0.0.1 only" "$T_TMP/chain.log" && pass || fail "no keys: loopback only, and said: $(cat "$T_TMP/chain.log")"
call POST "$U/api/generate" "$GEN"
expect_code 200 "through a keyed upstream"
[ "$(served_by)" = keyed ] && pass || fail "chained: served by $(served_by)"
call GET "$U/api/drover/nodes"
jq_check 'j.nodes[0].kind === "drover" && j.nodes[0].up' "the keyed node's kind detected with its key"
grep -q "s3cret" "$T_TMP/keyed.log" "$T_TMP/chain.log" && fail "the key reached a log" || pass

# ---- a node that goes silent mid-answer: stall_timeout ends it with an error event ----
fake_up st --interval 20 --tokens 40 --stall-after 3 || fail "stalling fake node"
cat >"$T_TMP/stall.conf" <<EOF
[fleet]
local = no
stall_timeout = 1s
[node st]
url = http://127.0.0.1:$st_PORT
kind = ollama
EOF
gateway stall
t0=$(date +%s%N)
call POST "$U/api/generate" '{"model":"slow","prompt":"x"}'
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_code 200 "stall: the stream had started"
last=$(printf '%s\n' "$BODY" | grep -v '^$' | tail -n 1)
printf '%s\n' "$BODY" | grep -q '"t2 "' && printf '%s' "$last" | grep -q '"error"' &&
  ! printf '%s\n' "$BODY" | grep -q '"done":true' && pass || fail "stall: tokens, then an error event, no done: $BODY"
[ "$ms" -lt 3000 ] && pass || fail "stall noticed after $ms ms (stall_timeout 1s)"

# ---- a whole answer is held until it is whole: a node that stalls part-way is replaced ----
fake_up ok --interval 10 --tokens 5 || fail "second fake node"
cat >"$T_TMP/whole.conf" <<EOF
[fleet]
local = no
route = priority
stall_timeout = 1s
[node st]
url = http://127.0.0.1:$st_PORT
kind = ollama
priority = 1
[node ok]
url = http://127.0.0.1:$ok_PORT
kind = ollama
priority = 2
EOF
gateway whole
call POST "$U/api/generate" '{"model":"slow","prompt":"x","stream":false}'
expect_code 200 "whole answer: the stalled node's part dropped, the next node answers"
jq_check 'j.response === "t0 t1 t2 t3 t4 " && j.done' "whole answer: exactly the second node's text"
[ "$(served_by)" = ok ] && pass || fail "whole answer served by $(served_by), want ok"

# ---- a node that says nothing while it reads a long prompt is not stalled ----
# Same stall_timeout (1s); this node is silent for 4 s before it answers. Not
# measured yet, it is given 3x a slow CPU's prompt time on top for a long prompt.
fake_up fd --interval 10 --tokens 5 --first-delay 4000 || fail "slow-starting fake node"
sed -e "s/$st_PORT/$fd_PORT/" -e "s/^\[node st\]/[node fd]/" "$T_TMP/stall.conf" >"$T_TMP/first.conf"
gateway first
long=$(printf 'word %.0s' $(seq 400))
t0=$(date +%s%N)
call POST "$U/api/generate" "{\"model\":\"slow\",\"prompt\":\"$long\",\"stream\":false}"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_code 200 "a long prompt: 4 s to the first token is not a stall"
jq_check 'j.response === "t0 t1 t2 t3 t4 " && j.done' "the whole answer after the silence"
[ "$ms" -ge 3900 ] && pass || fail "answered after $ms ms, before the node's first byte"
# a whole answer of unbounded length is streamed from the node (a stall stays
# detectable); a short bounded one is asked whole
call GET "http://127.0.0.1:$fd_PORT/last"
jq_check 'j.stream === true' "unbounded whole answer: the node asked to stream"
call POST "$U/api/generate" '{"model":"slow","prompt":"x","stream":false,"options":{"num_predict":8}}'
expect_code 502 "measured fast and loaded now (allowed 2.5 s): 4 s of silence on a short prompt is a stall"
call GET "http://127.0.0.1:$fd_PORT/last"
jq_check 'j.stream === false' "a short whole answer: asked whole"

# ---- a machine that stops answering mid-stream (SIGSTOP: no reset, nothing) ----
# stall_timeout is a minute here: two unanswered health checks end the silent stream
fake_up hz --interval 100 --tokens 60 || fail "fake node to stop"
cat >"$T_TMP/gone.conf" <<EOF
[fleet]
local = no
health_interval = 500ms
health_timeout = 500ms
stall_timeout = 60s
[node hz]
url = http://127.0.0.1:$hz_PORT
kind = ollama
EOF
gateway gone
curl -s -N "$U/api/generate" -d '{"model":"slow","prompt":"x"}' >"$T_TMP/gone.out" &
cpid=$!
for _ in $(seq 50); do grep -q '"t2 "' "$T_TMP/gone.out" 2>/dev/null && break; sleep 0.1; done
kill -STOP "$hz_PID"
t0=$(date +%s%N)
for _ in $(seq 150); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -CONT "$hz_PID"
if kill -0 "$cpid" 2>/dev/null; then kill "$cpid"; fail "a stopped machine: the stream still hangs after $ms ms"; fi
wait "$cpid" 2>/dev/null
last=$(grep -v '^$' "$T_TMP/gone.out" | tail -n 1)
printf '%s' "$last" | grep -q '"error"' && ! grep -q '"done":true' "$T_TMP/gone.out" && pass ||
  fail "a stopped machine: tokens, then an error event, no done: $(cat "$T_TMP/gone.out")"
[ "$ms" -lt 5000 ] && pass || fail "stopped machine noticed after $ms ms (two health checks of 0.5 s, 0.5 s apart)"
grep -q "stopped answering" "$T_TMP/gone.out" && pass || fail "the error says why: $last"
# once it answers again it rejoins
for _ in $(seq 40); do
  call GET "$U/api/drover/nodes"
  printf '%s' "$BODY" | grep -q '"up":true' && break
  sleep 0.1
done
call POST "$U/api/generate" '{"model":"slow","prompt":"x","stream":false,"options":{"num_predict":8}}'
expect_code 200 "the machine answers again: it rejoins"

run_drover nodes --url "$G" --json
expect_rc 0 "drover nodes --url"
printf '%s' "$OUT" | node -e "const j=JSON.parse(require('fs').readFileSync(0,'utf8')); if(!j.nodes.find(n=>n.name==='a').models[0].samples) process.exit(1)" \
  && pass || fail "nodes --url: live rates for a: $OUT"

finish
