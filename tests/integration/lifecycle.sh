# drover serve, model lifecycle: models found in an Ollama store (and the ones it
# must refuse), keep_alive, --max-loaded eviction, and a request that arrives
# while its model is still loading.
. "$(dirname "$0")/lib.sh"
MD=$DROVER_TEST_MODELS
S=$T_TMP/store
mkdir -p "$S/blobs" "$T_TMP/home"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null; wait $p 2>/dev/null; done; rm -rf "$T_TMP"' EXIT

# ---- a fake Ollama store ----------------------------------------------------------
sha() { sha256sum "$1" | cut -d' ' -f1; }
TINY=$(sha "$MD/llama-2-tiny-random.gguf")
STORIES=$(sha "$MD/stories260K.gguf")
cp "$MD/llama-2-tiny-random.gguf" "$S/blobs/sha256-$TINY"
ln -s "$MD/stories260K.gguf" "$S/blobs/sha256-$STORIES" # a symlinked blob is fine too
# non-model layers with real blobs on both sides of the model layer: the model
# layer must be picked by its mediaType, not its position
printf 'MIT' > "$T_TMP/lic"; LIC=$(sha "$T_TMP/lic"); cp "$T_TMP/lic" "$S/blobs/sha256-$LIC"
printf '{"temperature":0.7}' > "$T_TMP/par"; PAR=$(sha "$T_TMP/par"); cp "$T_TMP/par" "$S/blobs/sha256-$PAR"
manifest() { # manifest HOST/NAMESPACE/MODEL TAG MODEL_DIGEST
  mkdir -p "$S/manifests/$1"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'`
    `'"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:%s","size":19},'`
    `'"layers":[{"mediaType":"application/vnd.ollama.image.license","digest":"sha256:%s","size":3},'`
    `'{"mediaType":"application/vnd.ollama.image.model","digest":"%s","size":1},'`
    `'{"mediaType":"application/vnd.ollama.image.params","digest":"sha256:%s","size":19}]}\n' \
    "$PAR" "$LIC" "$3" "$PAR" > "$S/manifests/$1/$2"
}
R=registry.ollama.ai
manifest $R/library/tiny latest "sha256:$TINY"
manifest $R/library/stories 260k "sha256:$STORIES"
manifest $R/someone/stories latest "sha256:$STORIES"     # a user's namespace
manifest hf.co/someone/tiny-gguf Q8_0 "sha256:$TINY"     # another registry, a shared blob
# refused: digests that are not sha256:<64 lowercase hex>. Each would resolve to a
# real GGUF if it were used as a path, so serving one is caught.
manifest $R/library/evil latest "sha256:../../etc/passwd"
mkdir -p "$S/blobs/sha256-.." "$S/blobs/etc"; cp "$MD/stories260K.gguf" "$S/blobs/etc/passwd"
FAKE=${STORIES:0:60}
manifest $R/library/evil64 latest "sha256:/../$FAKE"    # 64 characters, not hex
mkdir -p "$S/blobs/sha256-"; cp "$MD/stories260K.gguf" "$S/blobs/$FAKE"
# refused: no blob, a blob that is not GGUF, a truncated GGUF, no model layer, bad JSON
manifest $R/library/missing latest "sha256:$(printf missing | sha256sum | cut -d' ' -f1)"
head -c 4096 /dev/urandom > "$T_TMP/junk"; J=$(sha "$T_TMP/junk"); cp "$T_TMP/junk" "$S/blobs/sha256-$J"
manifest $R/library/corrupt latest "sha256:$J"
head -c 100000 "$MD/stories260K.gguf" > "$T_TMP/trunc"; TR=$(sha "$T_TMP/trunc"); cp "$T_TMP/trunc" "$S/blobs/sha256-$TR"
manifest $R/library/truncated latest "sha256:$TR"
mkdir -p "$S/manifests/$R/library/nomodel" "$S/manifests/$R/library/broken"
printf '{"layers":[{"mediaType":"application/vnd.ollama.image.license","digest":"sha256:%s"}]}' "$LIC" \
  > "$S/manifests/$R/library/nomodel/latest"
printf '{"layers":[' > "$S/manifests/$R/library/broken/latest"
REFUSED="evil evil64 missing corrupt truncated nomodel broken"

# ---- helpers ----------------------------------------------------------------------
start() { # start NAME [VAR=VALUE]... -- [serve args]: leaves $PID, $U and $LOG
  local name=$1 envs=() port=
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  LOG=$T_TMP/$name.log
  env -u XDG_CONFIG_HOME -u XDG_DATA_HOME -u XDG_STATE_HOME -u OLLAMA_MODELS HOME="$T_TMP/home" \
    "${envs[@]}" "$DROVER" serve --port 0 --log-level info "$@" 2>"$LOG" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$LOG")
    [ -n "$port" ] && break
    kill -0 $PID 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$LOG" >&2; fail "serve ($name) did not start"; finish; exit 1; }
  pass
  U=http://127.0.0.1:$port
}
req() { # req METHOD PATH [BODY] : leaves $CODE and $BODY
  if [ $# -ge 3 ]; then
    BODY=$(curl -s -m 20 -o - -w '\n%{http_code}' -X "$1" "$U$2" -H 'content-type: application/json' -d "$3")
  else
    BODY=$(curl -s -m 20 -o - -w '\n%{http_code}' -X "$1" "$U$2")
  fi
  CODE=${BODY##*$'\n'}
  BODY=${BODY%$'\n'*}
}
expect_code() { [ "$CODE" = "$1" ] && pass || fail "$2: HTTP $CODE, want $1: $BODY"; }
js() { # js JS_EXPR : true when JS_EXPR holds with j = parsed $BODY
  printf '%s' "$BODY" | node -e "const j=JSON.parse(require('fs').readFileSync(0,'utf8')); process.exit(($1) ? 0 : 1)" 2>/dev/null
}
jq_check() { js "$1" && pass || fail "$2: $BODY"; }
ps_until() { # ps_until JS_EXPR WHAT : /api/ps satisfies JS_EXPR within ~2 s
  for _ in $(seq 20); do
    req GET /api/ps
    js "$1" && { pass; return; }
    sleep 0.1
  done
  fail "$2: /api/ps is $BODY"
}
names='j.models.map(m => m.name).sort().join(",")'
expires_in() { # JS: the only running model expires in LO..HI minutes from now
  echo "j.models.length === 1 && Math.abs(Date.parse(j.models[0].expires_at) - Date.now() - ($1 + $2) * 30e3) <= ($2 - $1) * 30e3"
}
count() { grep -c -- "$1" "$LOG"; }
gen() { # gen MODEL [EXTRA_JSON_FIELDS] : greedy "Once upon a time", 8 tokens, stream:false
  req POST /api/generate "{\"model\":\"$1\",\"prompt\":\"Once upon a time\",\"stream\":false,\"options\":{\"temperature\":0,\"num_predict\":8}${2:+,$2}}"
}
STORY='j.done === true && j.response.startsWith(", there was a little girl")'

# ---- A: the store, --max-loaded 1 -------------------------------------------------
start store OLLAMA_MODELS="$S" -- --max-loaded 1 --parallel 2 --ctx 256 --threads 1
grep -q "serving 4 models from the Ollama store $S" "$LOG" && pass || fail "store count in the log: $(cat "$LOG")"

# two requests at once, right after start: the second waits for the load the
# first started (both report a load_duration), one load, the same greedy text
G='{"model":"tiny:latest","prompt":"Once upon a time","stream":false,"options":{"temperature":0,"num_predict":8}}'
CODES=$(curl -s -m 20 -Z --parallel-immediate -w '%{http_code}\n' -o "$T_TMP/p1" "$U/api/generate" -d "$G" \
  --next -s -m 20 -w '%{http_code}\n' -o "$T_TMP/p2" "$U/api/generate" -d "$G" 2>/dev/null | sort | tr '\n' ' ')
[ "$CODES" = "200 200 " ] && pass || fail "concurrent first requests: HTTP $CODES: $(cat "$T_TMP/p1" "$T_TMP/p2")"
if node -e '
  const fs = require("fs");
  const [a, b] = process.argv.slice(1).map(f => JSON.parse(fs.readFileSync(f, "utf8")));
  for (const r of [a, b])
    if (!r.done || r.eval_count !== 8 || !(r.load_duration > 0) || r.model !== "tiny:latest") process.exit(1);
  if (a.response !== b.response) process.exit(2);' "$T_TMP/p1" "$T_TMP/p2"; then pass
else fail "both concurrent requests wait for the one load: $(cat "$T_TMP/p1" "$T_TMP/p2")"; fi
n=$(count "loading tiny:latest from $S/blobs/sha256-$TINY")
[ "$n" = 1 ] && pass || fail "one load for two concurrent requests, got $n: $(cat "$LOG")"
ps_until "$names === 'tiny:latest' && $(expires_in 4 6)" "default keep_alive is 5m"

# the listing: Ollama names, sizes, blob digests; refused manifests are absent
req GET /api/tags
expect_code 200 tags
jq_check "$names === 'hf.co/someone/tiny-gguf:Q8_0,someone/stories:latest,stories:260k,tiny:latest'" "tags lists the store's models and only them"
jq_check "j.models.some(m => m.name === 'tiny:latest' && m.size === 1750560 && m.digest === '$TINY' && m.details.family === 'llama')" "tiny:latest size and digest"
jq_check "j.models.some(m => m.name === 'stories:260k' && m.size === 1185376 && m.digest === '$STORIES' && m.details.format === 'gguf')" "stories:260k size and digest"
for m in $REFUSED; do
  gen "$m"
  expect_code 404 "refused manifest $m is not served"
done
for m in missing corrupt truncated; do
  grep -q "ollama model $m:latest" "$LOG" && pass || fail "no warning for the $m blob: $(cat "$LOG")"
done

# tiny then stories with max-loaded 1: only stories stays; keep_alive "10m"
gen stories:260k '"keep_alive":"10m"'
expect_code 200 "stories:260k generates"
jq_check "$STORY && j.model === 'stories:260k'" "stories:260k greedy text"
ps_until "$names === 'stories:260k' && j.models[0].digest === '$STORIES' && $(expires_in 9 11)" \
  "max-loaded 1: only stories:260k, expiring in 10m"
grep -q "unloading tiny:latest to make room for stories:260k" "$LOG" && pass || fail "eviction logged: $(cat "$LOG")"

# switching back loads tiny again; keep_alive -1 is forever
gen tiny:latest '"keep_alive":-1'
expect_code 200 "tiny:latest again"
jq_check 'j.done === true && j.eval_count === 8 && j.load_duration > 0' "tiny:latest reloaded"
n=$(count "loading tiny:latest from")
[ "$n" = 2 ] && pass || fail "tiny:latest loaded twice, got $n"
ps_until "$names === 'tiny:latest' && Date.parse(j.models[0].expires_at) > Date.parse('2300-01-01T00:00:00Z')" \
  "keep_alive -1: far-future expires_at"

# keep_alive 0 unloads the (loaded, forever) model as soon as the request is done
gen tiny:latest '"keep_alive":0'
expect_code 200 "keep_alive 0 request"
jq_check 'j.done === true && !j.load_duration' "keep_alive 0 request used the loaded model"
ps_until 'j.models.length === 0' "keep_alive 0 leaves /api/ps empty"
grep -q "unloaded tiny:latest" "$LOG" && pass || fail "unload logged"
# and the next request loads it again
gen stories:260k
jq_check "$STORY" "stories:260k after a keep_alive 0 unload"
kill $PID; wait $PID 2>/dev/null

# ---- D: --max-loaded 1 under switching: no request is lost or refused -------------
# A request that arrives while its model is being unloaded (keep_alive 0 of the
# other model, or eviction) must be answered: the model loads again for it.
start switch OLLAMA_MODELS="$S" -- --max-loaded 1 --parallel 2 --ctx 256 --threads 1
gen tiny:latest >/dev/null
lost=0
for i in $(seq 15); do
  curl -s -m 20 -o /dev/null -w '%{http_code}\n' "$U/api/generate" -H 'content-type: application/json' \
    -d '{"model":"stories:260k","prompt":"Once","stream":false,"keep_alive":0,"options":{"num_predict":2}}' > "$T_TMP/a$i" &
  a=$!
  curl -s -m 20 -o /dev/null -w '%{http_code}\n' "$U/api/generate" -H 'content-type: application/json' \
    -d '{"model":"tiny:latest","prompt":"Once","stream":false,"options":{"num_predict":2}}' > "$T_TMP/b$i" &
  b=$!
  wait $a $b
  [ "$(cat "$T_TMP/a$i")" = 200 ] && [ "$(cat "$T_TMP/b$i")" = 200 ] || lost=$((lost + 1))
done
[ "$lost" = 0 ] && pass || fail "switching models under --max-loaded 1: $lost of 15 rounds lost a request"
# one loaded while the other was busy: the limit holds again once both idle
curl -s -m 20 -o /dev/null "$U/api/generate" -H 'content-type: application/json' \
  -d '{"model":"tiny:latest","prompt":"Once","stream":false,"options":{"num_predict":120}}' &
a=$!
gen stories:260k >/dev/null
wait $a
ps_until 'j.models.length === 1' "max-loaded 1 holds again after both idle"
kill $PID; wait $PID 2>/dev/null

# ---- B: --no-ollama-store hides the store; C: ~/.ollama/models is the default ------
start hidden OLLAMA_MODELS="$S" -- --no-ollama-store --threads 1
req GET /api/tags
jq_check 'j.models.length === 0' "--no-ollama-store: no models"
gen stories:260k
expect_code 404 "--no-ollama-store: store model not found"
if grep -q "Ollama store" "$LOG"; then fail "--no-ollama-store still read the store"; else pass; fi
kill $PID; wait $PID 2>/dev/null

mkdir -p "$T_TMP/home2/.ollama"
ln -s "$S" "$T_TMP/home2/.ollama/models"
start default HOME="$T_TMP/home2" -- --threads 1
req GET /api/tags
jq_check "$names === 'hf.co/someone/tiny-gguf:Q8_0,someone/stories:latest,stories:260k,tiny:latest'" "~/.ollama/models without OLLAMA_MODELS"
kill $PID; wait $PID 2>/dev/null
finish
