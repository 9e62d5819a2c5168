# drover bench keeps every run in the history, and says in words when a node got
# slower than its baseline — and not when the same setup is measured again.
. "$(dirname "$0")/lib.sh"
DB=$T_TMP/h.db
mkdir -p "$T_TMP/small" "$T_TMP/big"
# the same model name, two sizes: the "node got slower" case, made deterministic
"$DROVER" synth "llama:layers=2,embd=256,heads=4,kv_heads=4,ff=512,vocab=1000" --quant q8_0 \
  -o "$T_TMP/small/m.gguf" >/dev/null 2>&1 || fail "synth small"
"$DROVER" synth "llama:layers=6,embd=768,heads=6,kv_heads=6,ff=1536,vocab=1000" --quant q4_0 \
  -o "$T_TMP/big/m.gguf" >/dev/null 2>&1 || fail "synth big"

PID=
PORT=0
start() { # start DIR : drover serve on DIR/m.gguf, 1 thread, the same port each time; sets U
  "$DROVER" serve --model "$1/m.gguf" --port "$PORT" --threads 1 --parallel 1 --ctx 512 \
    --no-ollama-store 2>"$T_TMP/serve.log" &
  PID=$!
  local port= i
  for i in $(seq 100); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$T_TMP/serve.log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  PORT=$port
  U=http://127.0.0.1:$port
}
stop() { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }
trap 'stop; rm -rf "$T_TMP"' EXIT
B=(-r 6 -p 48 -n 24 --db "$DB") # 6: a rerun of the same setup must overlap its baseline (a 6 ms TTFT is noisy)

start "$T_TMP/small"
run_drover bench "$U" "${B[@]}" --baseline
expect_rc 0 "baseline run"
expect_out "this run is now the baseline" "the baseline is announced"
run_drover bench "$U" "${B[@]}"
expect_rc 0 "rerun"
if printf '%s' "$OUT" | grep -q "slower than its baseline"; then fail "a rerun of the same setup was flagged: $OUT"; else pass; fi
stop

start "$T_TMP/big"
run_drover bench "$U" "${B[@]}"
expect_rc 0 "run on the slower node"
expect_out "m:latest is slower than its baseline" "a slowdown is flagged"
expect_out "^  tg [0-9.]+ tok/s vs baseline [0-9.]+ \(-[0-9]+ %\)$" "the slowdown in words, with numbers"
stop

run_drover history --db "$DB" --json
expect_rc 0 "history"
if printf '%s' "$OUT" | node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const runs = j.runs;
  if (runs.length !== 3) { console.error("runs", runs.length); process.exit(1); }
  if (runs.filter(r => r.baseline).length !== 1 || !runs[2].baseline) process.exit(2);
  for (const r of runs) if (r.kind !== "drover" || r.model !== "m:latest" || r.reps.length !== 6) process.exit(3);
  if (!(runs[0].median.tg_tps < runs[2].median.tg_tps)) process.exit(4);'; then pass; else fail "history keeps 3 runs with reps and one baseline: $OUT"; fi

# --local: in-process, kept in the history too
run_drover bench --local "$T_TMP/small/m.gguf" -r 2 -p 32 -n 8 --threads 1 --db "$DB" --json
expect_rc 0 "bench --local"
if printf '%s' "$OUT" | node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  process.exit(j.target === "local" && j.reps === 2 && j.pp_tps.median > 0 && j.tg_tps.median > 0 ? 0 : 1)'; then pass; else fail "--local json: $OUT"; fi
run_drover history --db "$DB" --target local
expect_out "local +local +m" "local runs are listed"

# a broken history does not lose the results
printf 'this is not sqlite' > "$T_TMP/bad.db"
run_drover bench --local "$T_TMP/small/m.gguf" -r 1 -p 16 -n 4 --threads 1 --db "$T_TMP/bad.db"
expect_rc 0 "bench with a corrupt history"
expect_out "tg tok/s" "results printed anyway"
expect_err "results not kept in the history: .*not a drover database" "the history problem is said"
finish
