# drover doctor against real misconfigured nodes on loopback: one with more
# threads than physical cores, one far slower than its bench baseline, one whose
# chat template opens a think block so a short budget ends in an empty answer,
# one that does not answer, and a healthy default node that gets a clean bill.
. "$(dirname "$0")/lib.sh"
S=$DROVER_TEST_MODELS/stories260K.gguf
export XDG_DATA_HOME=$T_TMP/data XDG_CONFIG_HOME=$T_TMP/config # no models or config from $HOME
DB=$T_TMP/h.db

# the machine's physical cores, as drover counts them; the threads node gets 4 more
CORES=$("$DROVER" hw --quick --json | node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(0,"utf8")).cpu.cores))')
[ -n "$CORES" ] && pass || fail "drover hw --json gives the physical cores"
THREADS=$((CORES + 4))
"$DROVER" hw --quick --json >"$T_TMP/hw.json"

# Ring's chat template (llama.cpp's built-in "bailing-think") ends the generation
# prompt with <think>: everything the model writes is reasoning until </think>,
# which stories260K never writes. A copy of stories260K with that template is a
# thinking model that spends any budget thinking (drover's engine treats a
# template-opened think block as reasoning, as llama.cpp's own server does).
node - "$S" "$T_TMP/ring.gguf" <<'JS' || fail "write ring.gguf"
const fs = require("fs");
const [src, dst] = process.argv.slice(2);
const tmpl = '{%- for m in messages -%}{%- set role = m.role | upper -%}' +
  '{%- if role == "USER" -%}{%- set role = "HUMAN" -%}{%- endif -%}' +
  '<role>{{ role }}</role>{{ m.content }}{%- endfor -%}' +
  '{%- if add_generation_prompt -%}<role>ASSISTANT</role><think>{%- endif -%}';
const b = fs.readFileSync(src);
let o = 8;
const u32 = () => { const v = b.readUInt32LE(o); o += 4; return v; };
const u64 = () => { const v = Number(b.readBigUInt64LE(o)); o += 8; return v; };
const str = () => { const n = u64(); const s = b.toString("utf8", o, o + n); o += n; return s; };
const size = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];
const skip = (t) => {
  if (t === 8) str();
  else if (t === 9) { const et = u32(), n = u64(); for (let i = 0; i < n; i++) skip(et); }
  else o += size[t];
};
if (b.toString("latin1", 0, 4) !== "GGUF") throw new Error("not GGUF");
const nt = u64(), nkv = u64();
let align = 32;
for (let i = 0; i < nkv; i++) {
  const k = str(), t = u32();
  if (k === "general.alignment") align = b.readUInt32LE(o);
  if (k === "tokenizer.chat_template") throw new Error("already has a template");
  skip(t);
}
const kvEnd = o;
for (let i = 0; i < nt; i++) { str(); const nd = u32(); o += 8 * nd + 4 + 8; }
const infoEnd = o, dataStart = Math.ceil(infoEnd / align) * align;
const key = Buffer.from("tokenizer.chat_template"), val = Buffer.from(tmpl);
const kv = Buffer.alloc(8 + key.length + 4 + 8 + val.length);
let p = 0;
kv.writeBigUInt64LE(BigInt(key.length), p); p += 8; key.copy(kv, p); p += key.length;
kv.writeUInt32LE(8, p); p += 4; /* string */
kv.writeBigUInt64LE(BigInt(val.length), p); p += 8; val.copy(kv, p);
const head = Buffer.from(b.subarray(0, 24));
head.writeBigUInt64LE(BigInt(nkv + 1), 16);
const meta = Buffer.concat([head, b.subarray(24, kvEnd), kv, b.subarray(kvEnd, infoEnd)]);
const pad = Buffer.alloc((align - (meta.length % align)) % align);
fs.writeFileSync(dst, Buffer.concat([meta, pad, b.subarray(dataStart)]));
JS

# the same model name in two sizes: the node that got slower (its model file was
# replaced by a much bigger one, the way a node changes under a baseline)
mkdir -p "$T_TMP/small" "$T_TMP/big"
"$DROVER" synth "llama:layers=2,embd=256,heads=4,kv_heads=4,ff=512,vocab=1000" --quant q8_0 \
  -o "$T_TMP/small/m.gguf" >/dev/null 2>&1 || fail "synth small"
"$DROVER" synth "llama:layers=6,embd=1024,heads=8,kv_heads=8,ff=2816,vocab=1000" --quant q8_0 \
  -o "$T_TMP/big/m.gguf" >/dev/null 2>&1 || fail "synth big"

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T_TMP"' EXIT
# serve NAME PORT ARGS... : drover serve in the background; sets the NAME_PORT variable
serve() {
  local name=$1 port=$2 log=$T_TMP/$1.log; shift 2
  "$DROVER" serve --port "$port" --no-ollama-store "$@" 2>"$log" &
  PIDS+=($!)
  local got= i
  for i in $(seq 100); do
    got=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$got" ] && break
    sleep 0.1
  done
  [ -n "$got" ] || { fail "$name did not start: $(cat "$log")"; return 1; }
  printf -v "${name}_PORT" '%s' "$got"
}

serve healthy 0 --model "$S"
serve threads 0 --model "$S" --threads "$THREADS"
serve ring 0 --model "$T_TMP/ring.gguf"
# the baseline is measured on the small model, then the node comes back on the
# same port with the big one
serve slow 0 --model "$T_TMP/small/m.gguf" --threads 1 --parallel 1 --ctx 512
run_drover bench "http://127.0.0.1:$slow_PORT" -r 4 -p 48 -n 24 --db "$DB" --baseline
expect_rc 0 "baseline of the slow node"
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null; unset 'PIDS[-1]'
serve slow "$slow_PORT" --model "$T_TMP/big/m.gguf" --threads 1 --parallel 1 --ctx 512

cat >"$T_TMP/drover.conf" <<CONF
[fleet]
local = no
[node healthy]
url = http://127.0.0.1:$healthy_PORT
[node threads]
url = http://127.0.0.1:$threads_PORT
kind = drover
[node slow]
url = http://127.0.0.1:$slow_PORT
[node thinker]
url = http://127.0.0.1:$ring_PORT
hw = $T_TMP/hw.json
[node gone]
url = http://127.0.0.1:1
CONF

run_drover doctor --config "$T_TMP/drover.conf" --db "$DB" --json
expect_rc 1 "problems found: exit 1"
printf '%s' "$OUT" >"$T_TMP/doctor.json"
# check NODE ID SEVERITY JS-CONDITION-ON-f WHAT : node NODE has finding ID of SEVERITY
# whose evidence/fix satisfy the condition (f.ev = evidence joined, f.fix)
check() {
  if node -e '
    const [node, id, sev, cond] = process.argv.slice(1);
    const j = JSON.parse(require("fs").readFileSync(process.argv[5], "utf8"));
    const n = j.nodes.find(x => x.name === node);
    if (!n) { console.error("no node " + node); process.exit(1); }
    const f = n.findings.find(x => x.id === id);
    if (!f) { console.error(node + " has no " + id + ": " + JSON.stringify(n)); process.exit(1); }
    f.ev = f.evidence.join("\n");
    if (f.severity !== sev) { console.error(id + " is " + f.severity); process.exit(1); }
    if (!eval(cond)) { console.error("condition fails: " + JSON.stringify(f)); process.exit(1); }
  ' "$1" "$2" "$3" "$4" "$T_TMP/doctor.json"; then pass; else fail "$5"; fi
}
check threads threads problem \
  "f.title === '$THREADS compute threads on $CORES physical cores' && f.ev.includes('threads $THREADS, set by --threads') && f.ev.includes('$CORES physical cores') && f.ev.includes('GET /api/drover/hw') && f.fix.includes('drover serve --threads $CORES')" \
  "the threads node: threads against physical cores, with the fix"
check slow regression problem \
  "/^m:latest generates \\d+ % slower than its baseline/.test(f.title) && f.ev.includes('baseline: tg') && f.ev.includes('$DB') && f.fix.includes('--baseline')" \
  "the slow node: slower than its baseline, with both numbers"
check thinker thinking-budget problem \
  "f.ev.includes('answer 0 chars') && f.ev.includes('done_reason \"length\"') && /the same with \"think\":false: answer [1-9]/.test(f.ev) && f.fix.includes('\"think\": false at the top level')" \
  "the thinking node: an empty answer at the limit, and think:false shown to help"
check gone reachable problem "f.title.includes('does not answer') && f.ev.includes('http://127.0.0.1:1/api/version')" \
  "the closed port: does not answer"
if node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const n = j.nodes.find(x => x.name === "healthy");
  const bad = n.findings.filter(f => f.severity !== "hint");
  if (bad.length || !n.reachable || n.kind !== "drover") { console.error(JSON.stringify(n)); process.exit(1); }
  /* the others are not accused of what they do not have */
  const t = j.nodes.find(x => x.name === "threads");
  if (t.findings.some(f => f.id === "regression" || f.id === "thinking-budget")) process.exit(2);
  const r = j.nodes.find(x => x.name === "thinker");
  if (r.findings.some(f => f.id === "threads")) process.exit(3);
  /* most severe first */
  const w = n => n.findings.filter(f => f.severity === "problem").length;
  for (let i = 1; i < j.nodes.length; i++) if (w(j.nodes[i]) > w(j.nodes[i - 1])) process.exit(4);
  if (j.problems !== 4) process.exit(5);
' "$T_TMP/doctor.json"; then pass; else fail "healthy node: no problem, no warning; others only what they have: $OUT"; fi

# the text: problems on the first screen, each with evidence and fix
run_drover doctor --config "$T_TMP/drover.conf" --db "$DB"
expect_rc 1 "text: exit 1"
expect_out "^drover doctor: 4 problems, 0 warnings" "text: the summary line"
first=$(printf '%s\n' "$OUT" | head -40)
for id in threads regression thinking-budget reachable; do
  printf '%s\n' "$first" | grep -q "^PROBLEM  $id: " && pass || fail "text: $id in the first screen: $OUT"
done
expect_out "^  fix       drover serve --threads $CORES" "text: the threads fix"
expect_out "^== healthy  http://127.0.0.1:$healthy_PORT  drover [0-9.]+, llama.cpp .*  ok \(" "text: healthy is ok"

# one node, healthy: a clean bill, exit 0
run_drover doctor --config "$T_TMP/drover.conf" --db "$DB" --node healthy
expect_rc 0 "only the healthy node: exit 0"
expect_out "^drover doctor: 0 problems, 0 warnings" "clean bill"

# without probes, what needs them says so
run_drover doctor --config "$T_TMP/drover.conf" --db "$DB" --node thinker --no-probe
expect_rc 0 "--no-probe: the thinking problem cannot be seen"
expect_out "not checked: thinking-budget: not probed: probes are off \(--no-probe\)" "--no-probe said"

# a URL works without a config, and a name that is not configured is bad usage
run_drover doctor --node "http://127.0.0.1:$threads_PORT" --db "$DB" --no-probe
expect_rc 1 "a URL as --node"
expect_out "PROBLEM  threads: $THREADS compute threads" "threads found by URL"
run_drover doctor --config "$T_TMP/drover.conf" --node nosuch
expect_rc 2 "unknown node name"
expect_err "no \[node nosuch\]" "unknown node named"

# a node whose clients unload the model after every request, and cut prompts
serve churn 0 --model "$S" --ctx 128
LONG=$(printf 'Once upon a time %.0s' $(seq 100))
for i in 1 2 3; do
  curl -s -o /dev/null "http://127.0.0.1:$churn_PORT/api/generate" \
    -d '{"model":"stories260K","prompt":"Once","stream":false,"keep_alive":0,"options":{"num_predict":2}}'
  sleep 0.3 # the unload happens after the answer
done
curl -s -o /dev/null "http://127.0.0.1:$churn_PORT/api/generate" \
  -d "{\"model\":\"stories260K\",\"prompt\":\"$LONG\",\"stream\":false,\"truncate\":true,\"options\":{\"num_predict\":2}}"
run_drover doctor --node "http://127.0.0.1:$churn_PORT" --db "$DB" --no-probe
expect_rc 0 "churn and cut prompts are warnings"
expect_out "WARNING  memory: stories260K:latest was loaded [34] times for 4 requests" "keep-alive churn from /metrics"
expect_out "WARNING  context: 1 prompt to stories260K:latest was cut to fit its context" "cut prompts from /metrics"
finish
