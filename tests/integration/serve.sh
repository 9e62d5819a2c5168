# drover serve end to end over HTTP: both APIs, streaming and not, errors, cancel.
. "$(dirname "$0")/lib.sh"
M=$DROVER_TEST_MODELS/stories260K.gguf
start_serve "$T_TMP/serve.log" --model "$M" --parallel 2 --ctx 256 --threads 1 --max-queue 2 \
  --no-ollama-store --log-level info || { fail "serve did not start"; finish; exit 1; }

req() { # req METHOD PATH [BODY] : leaves $CODE and $BODY
  if [ $# -ge 3 ]; then
    BODY=$(curl -s -o - -w '\n%{http_code}' -X "$1" "$U$2" -H 'content-type: application/json' -d "$3")
  else
    BODY=$(curl -s -o - -w '\n%{http_code}' -X "$1" "$U$2")
  fi
  CODE=${BODY##*$'\n'}
  BODY=${BODY%$'\n'*}
}
expect_code() { [ "$CODE" = "$1" ] && pass || fail "$2: HTTP $CODE, want $1: $BODY"; }
expect_body() { printf '%s' "$BODY" | grep -Eq -- "$1" && pass || fail "$2: body lacks /$1/: $BODY"; }
jq_check() { # jq_check JS_EXPR WHAT : evaluates JS with j = parsed $BODY
  if printf '%s' "$BODY" | node -e "const j=JSON.parse(require('fs').readFileSync(0,'utf8')); if(!($1)){console.error(JSON.stringify(j));process.exit(1)}"; then pass; else fail "$2"; fi
}

req GET /
expect_code 200 "GET /"; expect_body '^Ollama is running$' "GET / text"
[ "$(curl -s -o /dev/null -w '%{http_code}' -I "$U/")" = 200 ] && pass || fail "HEAD /"
req GET /api/version; expect_code 200 version; jq_check 'typeof j.version === "string"' "version field"
req GET /api/tags; expect_code 200 tags
jq_check 'j.models.length === 1 && j.models[0].name === "stories260K:latest" && j.models[0].details.family === "llama" && j.models[0].size === 1185376' "tags lists the model"
req GET /v1/models; jq_check 'j.object === "list" && j.data[0].id === "stories260K:latest"' "v1/models"
req GET /health; expect_code 200 health; jq_check 'j.status === "ok"' "health ok"

# non-streaming generate: greedy text and exact stats
req POST /api/generate '{"model":"stories260K","prompt":"Once upon a time","stream":false,"options":{"temperature":0,"num_predict":16}}'
expect_code 200 "generate"
jq_check 'j.done === true && j.done_reason === "length" && j.eval_count === 16 && j.prompt_eval_count > 0 && j.eval_duration > 0 && j.total_duration >= j.eval_duration && j.response.startsWith(", there was a little girl named Lily")' "generate stream:false"
GREEDY=$(printf '%s' "$BODY" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0,"utf8")).response)')

# streaming generate: NDJSON lines, concatenation equals the non-streaming text
req POST /api/generate '{"model":"stories260K:latest","prompt":"Once upon a time","options":{"temperature":0,"num_predict":16}}'
expect_code 200 "generate stream"
if printf '%s' "$BODY" | GREEDY="$GREEDY" node -e '
  const lines = require("fs").readFileSync(0,"utf8").trim().split("\n").map(JSON.parse);
  const last = lines.pop();
  if (!last.done || last.eval_count !== 16 || last.done_reason !== "length") process.exit(1);
  if (lines.some(l => l.done)) process.exit(2);
  const text = lines.map(l => l.response).join("");
  if (text + "\n" !== process.env.GREEDY + "\n") { console.error(text); process.exit(3); }'; then pass; else fail "streamed text = non-streamed text"; fi

# two concurrent streams finish with the same text as when each ran alone
solo1=$(curl -s "$U/api/generate" -d '{"model":"stories260K","prompt":"The cat","stream":false,"options":{"temperature":0,"num_predict":24}}')
solo2=$(curl -s "$U/api/generate" -d '{"model":"stories260K","prompt":"One day, a little boy","stream":false,"options":{"temperature":0,"num_predict":24}}')
curl -s "$U/api/generate" -d '{"model":"stories260K","prompt":"The cat","options":{"temperature":0,"num_predict":24}}' > "$T_TMP/c1" &
p1=$!
curl -s "$U/api/generate" -d '{"model":"stories260K","prompt":"One day, a little boy","options":{"temperature":0,"num_predict":24}}' > "$T_TMP/c2" &
p2=$!
wait $p1 $p2
same() { # same SOLO_JSON STREAM_FILE
  printf '%s' "$1" | STREAM="$2" node -e '
    const fs = require("fs");
    const solo = JSON.parse(fs.readFileSync(0, "utf8")).response;
    const lines = fs.readFileSync(process.env.STREAM, "utf8").trim().split("\n").map(JSON.parse);
    const text = lines.map(l => l.response || "").join("");
    process.exit(text === solo && lines[lines.length - 1].eval_count === 24 ? 0 : 1)'
}
same "$solo1" "$T_TMP/c1" && same "$solo2" "$T_TMP/c2" && pass || fail "concurrent streams differ from solo runs"

# chat on a model without a template: plain text fallback, message shape
req POST /api/chat '{"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],"stream":false,"options":{"temperature":0,"num_predict":8}}'
expect_code 200 chat
jq_check 'j.message.role === "assistant" && j.message.content.length > 0 && j.eval_count === 8' "chat stream:false"

# stop strings are never emitted
req POST /api/generate '{"model":"stories260K","prompt":"Once upon a time","stream":false,"options":{"temperature":0,"num_predict":40,"stop":["Lily"]}}'
jq_check 'j.done_reason === "stop" && !j.response.includes("Lily") && j.response.includes("named")' "stop string"

# format json constrains output to JSON
req POST /api/generate '{"model":"stories260K","prompt":"Once upon a time","stream":false,"format":"json","options":{"temperature":0,"num_predict":24}}'
expect_code 200 "format json"
jq_check 'j.response.trim().startsWith("{")' "format json output starts an object"

# OpenAI: non-streaming and streaming with usage
req POST /v1/completions '{"model":"stories260K","prompt":"Once upon a time","max_tokens":10,"temperature":0}'
jq_check 'j.object === "text_completion" && j.choices[0].finish_reason === "length" && j.usage.completion_tokens === 10' "v1/completions"
req POST /v1/chat/completions '{"model":"stories260K","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":6,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
if printf '%s' "$BODY" | node -e '
  const ev = require("fs").readFileSync(0,"utf8").split("\n\n").filter(Boolean);
  if (ev.pop() !== "data: [DONE]") process.exit(1);
  const js = ev.map(e => JSON.parse(e.slice(6)));
  const usage = js.pop().usage;
  if (!usage || usage.completion_tokens !== 6) process.exit(2);
  if (js[0].choices[0].delta.role !== "assistant") process.exit(3);
  if (js[js.length-1].choices[0].finish_reason !== "length") process.exit(4);'; then pass; else fail "v1 chat stream shape"; fi

# embeddings: one L2-normalised vector per input, the same through all three routes
req POST /api/embed '{"model":"stories260K","input":["hello world","Once upon a time"]}'
expect_code 200 "api/embed"
jq_check 'j.embeddings.length === 2 && j.embeddings[0].length === 64 && Math.abs(Math.hypot(...j.embeddings[1]) - 1) < 1e-4 && j.prompt_eval_count > 0 && j.embeddings[0][0] !== j.embeddings[1][0]' "api/embed vectors"
E1=$(printf '%s' "$BODY" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0,"utf8")).embeddings[0].slice(0,4).map(x=>x.toFixed(5)).join(","))')
req POST /api/embeddings '{"model":"stories260K","prompt":"hello world"}'
E2=$(printf '%s' "$BODY" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0,"utf8")).embedding.slice(0,4).map(x=>x.toFixed(5)).join(","))')
req POST /v1/embeddings '{"model":"stories260K","input":"hello world"}'
E3=$(printf '%s' "$BODY" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0,"utf8")).data[0].embedding.slice(0,4).map(x=>x.toFixed(5)).join(","))')
[ -n "$E1" ] && [ "$E1" = "$E2" ] && [ "$E1" = "$E3" ] && pass || fail "embeddings differ across routes: $E1 / $E2 / $E3"
req POST /api/embed '{"model":"nope","input":"x"}'
expect_code 404 "embed unknown model"
req POST /api/embed '{"model":"stories260K","input":42}'
expect_code 400 "embed bad input"

# errors: unknown model, malformed JSON, missing model, wrong method, unknown path, huge body
req POST /api/generate '{"model":"nope","prompt":"x"}'
expect_code 404 "unknown model"; expect_body 'model \\"nope\\" not found' "unknown model message"
req POST /v1/chat/completions '{"model":"nope","messages":[{"role":"user","content":"x"}]}'
expect_code 404 "openai unknown model"; jq_check 'typeof j.error.message === "string"' "openai error shape"
req POST /api/chat '{"model": "stories260K", "messages": [}'
expect_code 400 "malformed JSON"; expect_body 'invalid JSON' "malformed message"
req POST /api/generate '{"prompt":"x"}'
expect_code 400 "missing model"
req GET /api/generate; expect_code 405 "GET on a POST route"
req GET /api/nothing; expect_code 404 "unknown path"
head -c 17000000 /dev/zero | tr '\0' 'a' > "$T_TMP/big"
CODE=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' --data-binary @"$T_TMP/big" "$U/api/generate")
[ "$CODE" = 413 ] && pass || fail "oversized body: $CODE"

# a client that hangs up mid-stream frees its slot: afterwards both slots serve
for i in 1 2 3; do
  curl -s -N --max-time 0.3 "$U/api/generate" -d '{"model":"stories260K","prompt":"Once upon a time","options":{"num_predict":100000,"temperature":0}}' >/dev/null 2>&1
done
sleep 0.5
req GET /metrics
expect_body '^drover_busy_slots 0$' "no slot leaked after disconnects"
expect_body '^drover_queue_depth 0$' "no queue leaked"
expect_body '^drover_tokens_predicted_total [1-9]' "tokens counted"
expect_body '^drover_tokens_predicted_total\{model="stories260K:latest"\} [1-9]' "tokens counted per model"
expect_body '^drover_model_loaded\{model="stories260K:latest"\} 1$' "loaded state per model"

# a prompt longer than the context fails before any token: a plain 400, streaming or not
LONG=$(printf 'Once upon a time %.0s' $(seq 500))
req POST /api/generate "{\"model\":\"stories260K\",\"prompt\":\"$LONG\",\"stream\":false}"
expect_code 400 "prompt longer than the context"
jq_check '/the prompt is \d+ tokens but the context of stories260K:latest holds 256/.test(j.error)' "prompt too long: says how long each is"
req POST /api/generate "{\"model\":\"stories260K\",\"prompt\":\"$LONG\",\"stream\":false,\"truncate\":true,\"options\":{\"num_predict\":8}}"
expect_code 200 "truncate:true keeps the end of a long prompt"
jq_check 'j.eval_count === 8 && j.prompt_eval_count < 256' "truncated prompt fits the context"
req POST /api/generate "{\"model\":\"stories260K\",\"prompt\":\"$LONG\"}"
expect_code 400 "streaming prompt longer than the context"
jq_check 'typeof j.error === "string" && j.error.length > 0' "streaming prompt too long: error body"
req POST /v1/chat/completions "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"$LONG\"}],\"stream\":true}"
expect_code 400 "openai streaming prompt longer than the context"
jq_check 'typeof j.error.message === "string"' "openai prompt too long: error shape"

# more requests than slots + queue: some get 503 with Retry-After, all others finish
pids=()
for i in $(seq 8); do
  curl -s -o "$T_TMP/c$i" -D "$T_TMP/h$i" -w '%{http_code}' "$U/api/generate" \
    -d '{"model":"stories260K","prompt":"Once upon a time","stream":false,"options":{"num_predict":300,"temperature":0}}' > "$T_TMP/code$i" &
  pids+=($!)
done
wait "${pids[@]}"
ok=0; busy=0
for i in $(seq 8); do
  c=$(cat "$T_TMP/code$i")
  [ "$c" = 200 ] && ok=$((ok + 1))
  if [ "$c" = 503 ]; then busy=$((busy + 1)); grep -qi '^retry-after:' "$T_TMP/h$i" && pass || fail "503 without Retry-After"; fi
done
[ $((ok + busy)) = 8 ] && pass || fail "overload: $ok ok + $busy busy != 8"
[ "$ok" -ge 4 ] && pass || fail "overload: only $ok served"
req GET /api/ps
jq_check 'j.models.length === 1 && j.models[0].size > 1185376 && j.models[0].size_vram === 0 && j.models[0].context_length === 256' "ps shows the loaded model"

kill -TERM $PID; wait $PID; RC=$?
[ "$RC" = 0 ] && pass || fail "serve exits 0 on SIGTERM, got $RC"
grep -q "stopping" "$T_TMP/serve.log" && pass || fail "serve says it stops"
finish
