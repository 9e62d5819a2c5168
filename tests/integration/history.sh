# drover history on databases filled by hand (the sqlite3 CLI, as a version-1
# drover wrote them): table, JSON, filters, --since, and files that are wrong.
. "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || { echo "FAIL: this test needs the sqlite3 CLI (apt install sqlite3)" >&2; exit 1; }
export TZ=UTC

# The version-1 schema exactly as drover 0.1 wrote it (it never changes).
V1_SCHEMA="
CREATE TABLE runs (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, target TEXT NOT NULL,
  kind TEXT NOT NULL, engine_version TEXT NOT NULL DEFAULT '', model TEXT NOT NULL,
  model_digest TEXT NOT NULL DEFAULT '', model_size INTEGER NOT NULL DEFAULT 0,
  quant TEXT NOT NULL DEFAULT '', hw TEXT NOT NULL DEFAULT '',
  params TEXT NOT NULL DEFAULT '{}', baseline INTEGER NOT NULL DEFAULT 0);
CREATE TABLE reps (run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  idx INTEGER NOT NULL, concurrency INTEGER NOT NULL DEFAULT 1, pp_tps REAL, tg_tps REAL,
  ttft_ms REAL, e2e_ms REAL, prompt_tokens INTEGER, gen_tokens INTEGER,
  source TEXT NOT NULL DEFAULT '', PRIMARY KEY (run_id, idx));
CREATE INDEX runs_target_model_ts ON runs (target, model, ts);
CREATE INDEX runs_ts ON runs (ts);
PRAGMA user_version = 1;"

# ---- no database yet: a message, exit 0, and nothing created ----
run_drover history --db "$T_TMP/none/drover.db"
expect_rc 0 "missing db"
expect_out "^no history yet \\($T_TMP/none/drover.db\\)$" "missing db says so and names it"
[ ! -e "$T_TMP/none" ] && pass || fail "history created $T_TMP/none"
run_drover history --json --db "$T_TMP/none/drover.db"
expect_rc 0 "missing db --json"
expect_out '"runs": \[\]' "missing db --json has no runs"

mkdir -p "$T_TMP/state/drover" "$T_TMP/home"
XDG_STATE_HOME=$T_TMP/state run_drover history
expect_out "^no history yet \\($T_TMP/state/drover/drover.db\\)$" "default path under XDG_STATE_HOME"
XDG_STATE_HOME= HOME=$T_TMP/home run_drover history
expect_out "^no history yet \\($T_TMP/home/.local/state/drover/drover.db\\)$" "default path under HOME"

# ---- a version-1 database with three runs ----
DB=$T_TMP/h.db
now=$(date +%s)
T1=$((now - 10 * 86400)); T2=$((now - 2 * 86400)); T3=$((now - 3600))
sqlite3 "$DB" "$V1_SCHEMA" || fail "sqlite3 could not write the v1 schema"
sqlite3 "$DB" "
INSERT INTO runs VALUES (1, $T1, 'http://a:11434', 'ollama', '0.5.1', 'llama3.2:1b', 'sha256:ab', 1321098329,
  'Q4_K_M', 'NVIDIA H100', '{\"p\":512,\"n\":128}', 0);
INSERT INTO runs (id, ts, target, kind, model, quant, baseline)
  VALUES (2, $T2, 'http://a:11434', 'ollama', 'qwen2.5:0.5b', 'Q8_0', 1);
INSERT INTO runs (id, ts, target, kind, model) VALUES (3, $T3, 'http://127.0.0.1:11435', 'drover', 'llama3.2:1b');
INSERT INTO reps (run_id, idx, concurrency, pp_tps, tg_tps, ttft_ms, e2e_ms, prompt_tokens, gen_tokens, source)
  VALUES (1, 0, 1, 100, 10, 50, 900, 512, 128, 'server'), (1, 1, 1, 300, 30, NULL, 1000, 512, 128, 'server'),
         (1, 2, 1, 200, 20, 70, 1100, 512, 128, 'server'), (2, 0, 4, 1000.5, 55.5, 12, NULL, NULL, NULL, 'client');"

run_drover history --db "$DB"
expect_rc 0 "history"
expect_lines 4 "$OUT" "header and three runs"
expect_out '^when +target +kind +model +quant +pp tok/s +tg tok/s +ttft ms +reps$' "header"
first=$(printf '%s\n' "$OUT" | sed -n 2p); last=$(printf '%s\n' "$OUT" | sed -n 4p)
[[ $first == *"http://127.0.0.1:11435"* ]] && pass || fail "newest first: $first"
[[ $last == "$(date -d @$T1 '+%Y-%m-%d %H:%M')  http://a:11434"* ]] && pass || fail "when column: $last"
expect_out 'http://a:11434 +ollama +llama3\.2:1b +Q4_K_M +200\.0 +20\.0 +60\.0 +3$' "medians of run 1"
expect_out 'http://a:11434 +ollama +qwen2\.5:0\.5b +Q8_0 +1000\.5 +55\.5 +12\.0 +1 +baseline$' "run 2 is the baseline"
expect_out 'http://127\.0\.0\.1:11435 +drover +llama3\.2:1b +- +- +- +- +0$' "run 3 has nothing measured"
# aligned: every column starts where its header does
if printf '%s\n' "$OUT" | awk '
  NR == 1 { t = index($0, "target"); k = index($0, "kind"); m = index($0, "model"); next }
  substr($0, t - 2, 3) !~ /^  [^ ]$/ || substr($0, k - 2, 3) !~ /^  [^ ]$/ ||
  substr($0, m - 2, 3) !~ /^  [^ ]$/ { bad = 1 }
  END { exit bad }'; then pass; else fail "columns are not aligned: $OUT"; fi
[ "$(sqlite3 "$DB" 'PRAGMA user_version')" -ge 2 ] && pass || fail "history did not migrate v1 forward"

run_drover history --json --db "$DB"
expect_rc 0 "--json"
if printf '%s' "$OUT" | T1=$T1 node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const ok = (c, what) => { if (!c) { console.error(what, JSON.stringify(j, null, 1)); process.exit(1); } };
  ok(j.db.endsWith("/h.db"), "db");
  ok(j.more === false, "more");
  ok(j.runs.map(r => r.id).join() === "3,2,1", "order");
  const r1 = j.runs[2], r2 = j.runs[1], r3 = j.runs[0];
  ok(r1.ts === +process.env.T1 && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(r1.time), "time");
  ok(r1.target === "http://a:11434" && r1.kind === "ollama" && r1.engine_version === "0.5.1", "r1 ids");
  ok(r1.model_digest === "sha256:ab" && r1.model_size === 1321098329 && r1.hw === "NVIDIA H100", "r1 model");
  ok(r1.params.p === 512 && r1.params.n === 128, "params is JSON");
  ok(r1.median.pp_tps === 200 && r1.median.tg_tps === 20 && r1.median.ttft_ms === 60 && r1.median.e2e_ms === 1000, "r1 medians");
  ok(r1.reps.length === 3 && r1.reps[1].ttft_ms === null && r1.reps[0].source === "server", "r1 reps");
  ok(r1.reps[2].prompt_tokens === 512 && r1.reps[2].gen_tokens === 128, "r1 tokens");
  ok(r2.baseline === true && r1.baseline === false && r3.baseline === false, "baseline");
  ok(r2.reps[0].concurrency === 4 && r2.reps[0].gen_tokens === null && r2.median.e2e_ms === null, "r2 nulls");
  ok(r3.reps.length === 0 && r3.median.pp_tps === null && r3.quant === "", "r3 empty");
'; then pass; else fail "--json fields"; fi

# ---- filters ----
rows() { printf '%s\n' "$OUT" | tail -n +2 | grep -c '^[0-9]'; }
run_drover history --db "$DB" --target http://a:11434
[ "$(rows)" = 2 ] && pass || fail "--target: $OUT"
run_drover history --db "$DB" --model llama3.2:1b
[ "$(rows)" = 2 ] && pass || fail "--model: $OUT"
expect_out 'drover +llama3\.2:1b' "--model keeps run 3"
run_drover history --db "$DB" --target http://a:11434 --model llama3.2:1b
[ "$(rows)" = 1 ] && pass || fail "--target --model: $OUT"
expect_out 'Q4_K_M' "--target --model keeps run 1"
run_drover history --db "$DB" --since 7d
[ "$(rows)" = 2 ] && pass || fail "--since 7d: $OUT"
run_drover history --db "$DB" --since 24h
[ "$(rows)" = 1 ] && pass || fail "--since 24h: $OUT"
expect_out 'drover +llama3\.2:1b' "--since 24h keeps run 3"
run_drover history --db "$DB" --since 90m
[ "$(rows)" = 1 ] && pass || fail "--since 90m: $OUT"
run_drover history --db "$DB" --since "$(date -d @$((now - 5 * 86400)) +%F)"
[ "$(rows)" = 2 ] && pass || fail "--since DATE: $OUT"
run_drover history --db "$DB" --since "$(date -d @$((now - 20 * 86400)) +%F)"
[ "$(rows)" = 3 ] && pass || fail "--since an older DATE: $OUT"
run_drover history --db "$DB" --limit 2
[ "$(rows)" = 2 ] && pass || fail "--limit 2: $OUT"
expect_out '^\(only the newest 2 shown; --limit N shows more\)$' "--limit says there is more"
run_drover history --db "$DB" --limit 3
[ "$(rows)" = 3 ] && pass || fail "--limit 3: $OUT"
if printf '%s\n' "$OUT" | grep -q 'newest'; then fail "--limit 3 claims more: $OUT"; else pass; fi
run_drover history --db "$DB" --json --limit 1
expect_out '"more": true' "--json --limit 1 says there is more"
run_drover history --db "$DB" --target nowhere
expect_rc 0 "no match"
expect_out "^no runs match \\($DB\\)$" "no match says so"

# the default path finds the same file
cp "$DB" "$T_TMP/state/drover/drover.db"
XDG_STATE_HOME=$T_TMP/state run_drover history --model qwen2.5:0.5b
expect_out 'qwen2\.5:0\.5b.* baseline$' "default path is read"

# an empty drover database
sqlite3 "$T_TMP/empty.db" "$V1_SCHEMA"
run_drover history --db "$T_TMP/empty.db"
expect_rc 0 "empty db"
expect_out "^no history yet \\($T_TMP/empty.db\\)$" "empty db says no history"

# ---- bad usage: exit 2 ----
for args in "--since yesterday" "--since 7x" "--since 2026-13-01" "--since 2026-02-31" \
            "--limit 0" "--limit -3" "--limit many" "--target" "extra"; do
  # shellcheck disable=SC2086
  run_drover history --db "$DB" $args
  expect_rc 2 "history $args"
  expect_err 'usage: drover history' "history $args prints the usage"
done

# ---- wrong files: exit 1, exactly one line on stderr, nothing on stdout ----
head -c 4000 /dev/urandom > "$T_TMP/random.db"
printf 'not a database\n%.0s' $(seq 200) > "$T_TMP/text.db"
head -c 5000 "$DB" > "$T_TMP/cut.db"
sqlite3 "$T_TMP/newer.db" "CREATE TABLE runs (x); PRAGMA user_version = 9;"
sqlite3 "$T_TMP/other.db" "CREATE TABLE photos (path TEXT);"
mkdir "$T_TMP/dir.db"
for f in random text cut newer other dir; do
  for mode in "" --json; do
    # shellcheck disable=SC2086
    run_drover history $mode --db "$T_TMP/$f.db"
    expect_rc 1 "history $mode on $f.db"
    expect_lines 1 "$ERR" "history $mode on $f.db: one line on stderr"
    expect_err "^drover history: $T_TMP/$f.db" "history $mode on $f.db names the file"
    [ -z "$OUT" ] && pass || fail "history $mode on $f.db printed on stdout: $OUT"
  done
done
run_drover history --db "$T_TMP/text.db"
expect_err 'not a drover database \(the file is not SQLite\)' "text file is not SQLite"
run_drover history --db "$T_TMP/cut.db"
expect_err 'corrupt' "cut file is corrupt"
run_drover history --db "$T_TMP/newer.db"
expect_err 'was written by a newer drover \(schema 9, this drover knows [0-9]+\)$' "newer schema"
[ "$(sqlite3 "$T_TMP/newer.db" 'PRAGMA user_version')" = 9 ] && pass || fail "newer db was changed"
run_drover history --db "$T_TMP/other.db"
expect_err 'not a drover database' "another program's SQLite file"

finish
