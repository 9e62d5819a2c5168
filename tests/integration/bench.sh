# drover bench against a real drover node on loopback (stories260K).
. "$(dirname "$0")/lib.sh"
M=$DROVER_TEST_MODELS/stories260K.gguf
start_serve "$T_TMP/serve.log" --model "$M" --parallel 2 --ctx 512 --threads 1 \
  --no-ollama-store --log-level info || { fail "serve did not start"; finish; exit 1; }

# the table: one row, positive pp / tg / ttft
run_drover bench "$U" -r 3 -p 64 -n 32
expect_rc 0 "bench one target"
expect_out '^target +kind +model +streams .*pp tok/s +tg tok/s +ttft ms +e2e ms' "table header with units"
expect_lines 1 "$(printf '%s\n' "$OUT" | grep "^$U ")" "one row for one target"
row=$(printf '%s\n' "$OUT" | grep "^$U ")
if printf '%s\n' "$row" | awk '{ if ($2 != "drover" || $3 != "stories260K:latest" || $4 != 1) exit 1;
    split($5, t, "/"); if (t[1] < 32 || t[1] > 128 || t[2] < 1) exit 2;
    if (!($6 > 0 && $7 > 0)) exit 3 }'; then pass; else fail "row has kind, model, tokens, pp, tg: $row"; fi
# ttft and e2e: the two numbers before the spread
if printf '%s\n' "$row" | awk '{ n = NF; if ($n != "%") exit 1; if (!($(n-3) > 0 && $(n-2) > 0 && $(n-2) >= $(n-3))) exit 2 }'; then pass; else fail "positive ttft <= e2e: $row"; fi

# --json: one document, every repetition
run_drover bench "$U" -r 3 -p 64 -n 32 --json
expect_rc 0 "bench --json"
if printf '%s' "$OUT" | node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const t = j.targets[0];
  if (j.targets.length !== 1 || t.status !== "ok" || t.kind !== "drover") process.exit(1);
  if (t.model.name !== "stories260K:latest" || t.model.size !== 1185376) process.exit(2);
  const l = t.levels[0];
  if (t.levels.length !== 1 || l.concurrency !== 1 || l.reps.length !== 3) process.exit(3);
  for (const r of l.reps)
    if (!(r.pp_tps > 0 && r.tg_tps > 0 && r.ttft_ms > 0 && r.e2e_ms >= r.ttft_ms && r.gen_tokens > 0 &&
          r.prompt_tokens > 0 && r.source === "server")) process.exit(4);
  if (!(l.tg_tps.median > 0 && l.tg_tps.min <= l.tg_tps.median && l.tg_tps.median <= l.tg_tps.max)) process.exit(5);
  if (j.params.reps !== 3 || j.params.prompt_tokens !== 64) process.exit(6);'; then pass; else fail "--json shape: $OUT"; fi

# --concurrency: one row per level
run_drover bench "$U" -r 2 -p 32 -n 16 --concurrency 1,2
expect_rc 0 "bench --concurrency 1,2"
expect_lines 2 "$(printf '%s\n' "$OUT" | grep "^$U ")" "one row per level"
expect_out "^$U +drover +stories260K:latest +2 " "a row for 2 streams"
expect_out 'tg/stream' "per-stream column with several streams"

# --csv
run_drover bench "$U" -r 2 -p 32 -n 16 --csv
expect_rc 0 "bench --csv"
expect_out '^target,kind,model,status,streams,' "csv header"
expect_out "^$U,drover,stories260K:latest,ok,1,2," "csv row"

# an unreachable target is reported and the other one still measured
run_drover bench "$U" http://127.0.0.1:1 -r 2 -p 32 -n 16
expect_rc 0 "one good target is enough"
expect_out "^$U +drover " "the good target is measured"
expect_out '^http://127.0.0.1:1: unreachable: ' "the bad target is reported"
expect_out 'tg vs first' "ratio column with several targets"
run_drover bench http://127.0.0.1:1 -r 1
expect_rc 1 "nothing measured"
expect_out 'unreachable' "says unreachable"

# a model the target does not have
run_drover bench "$U" --model no-such-model -r 1 -p 16 -n 8
expect_rc 1 "unknown model"
expect_out 'does not have model no-such-model \(it has: stories260K:latest\)' "names the model and what it has"

# bad usage
for args in "" "$U -r 0" "$U -p x" "$U --concurrency 1,,x" "$U --kind nope" "$U --json --csv" "not-a-url" "$U --frob"; do
  run_drover bench $args
  expect_rc 2 "bad usage: bench $args"
done

# Ctrl-C: stops, prints what was measured, exit 0 when something was
n0=$(curl -s "$U/metrics" | sed -n 's/^drover_requests_total //p')
"$DROVER" bench "$U" -r 1000 -p 32 -n 16 >"$T_TMP/int.out" 2>"$T_TMP/int.err" &
BP=$!
for i in $(seq 100); do  # the warm-up's two requests, then a few repetitions
  sleep 0.1
  n=$(curl -s "$U/metrics" | sed -n 's/^drover_requests_total //p')
  [ "${n:-0}" -ge $((n0 + 6)) ] && break
done
kill -INT $BP; wait $BP; RC=$?
[ "$RC" = 0 ] && pass || fail "interrupted bench exits 0, got $RC: $(cat "$T_TMP/int.err")"
grep -Eq "^$U +drover" "$T_TMP/int.out" && pass || fail "interrupted bench prints its row: $(cat "$T_TMP/int.out")"
grep -q 'interrupted' "$T_TMP/int.out" && pass || fail "says it was interrupted"

# a drover node tells its machine; the run keeps it
curl -s "$U/api/drover/hw" | node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  process.exit(j.cpu && j.cpu.cores > 0 && Array.isArray(j.devices) ? 0 : 1)' && pass || fail "/api/drover/hw"
run_drover bench "$U" -r 1 -p 16 -n 4 --db "$T_TMP/hw.db"
run_drover history --db "$T_TMP/hw.db" --json
printf '%s' "$OUT" | node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  process.exit(/cores, \d+ GiB RAM/.test(j.runs[0].hw) ? 0 : 1)' && pass || fail "the run keeps the node hardware: $OUT"
finish
