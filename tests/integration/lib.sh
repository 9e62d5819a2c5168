# Helpers for black-box tests. Source it; each test script is one ctest test.
set -u
: "${DROVER:?path of the drover binary}"
: "${DROVER_TEST_MODELS:?folder with test models}"
T_FAILS=0
T_COUNT=0
T_TMP=$(mktemp -d)
trap 'rm -rf "$T_TMP"' EXIT

fail() { echo "FAIL: $*" >&2; T_FAILS=$((T_FAILS + 1)); }
pass() { T_COUNT=$((T_COUNT + 1)); }

# run_drover ARGS... : runs drover, leaves $OUT, $ERR and $RC
run_drover() {
  "$DROVER" "$@" >"$T_TMP/out" 2>"$T_TMP/err"
  RC=$?
  OUT=$(cat "$T_TMP/out")
  ERR=$(cat "$T_TMP/err")
}
expect_rc() { # expect_rc WANT WHAT
  if [ "$RC" -eq "$1" ]; then pass; else fail "$2: exit $RC, want $1 (stderr: $ERR)"; fi
}
expect_out() { # expect_out REGEX WHAT
  if printf '%s\n' "$OUT" | grep -Eq -- "$1"; then pass; else fail "$2: stdout lacks /$1/: $OUT"; fi
}
expect_err() { # expect_err REGEX WHAT
  if printf '%s\n' "$ERR" | grep -Eq -- "$1"; then pass; else fail "$2: stderr lacks /$1/: $ERR"; fi
}
expect_lines() { # expect_lines N TEXT WHAT : TEXT has exactly N lines
  local n; n=$(printf '%s' "$2" | grep -c '')
  if [ "$n" -eq "$1" ]; then pass; else fail "$3: $n lines, want $1: $2"; fi
}
# start_serve LOG [drover serve args...] : drover serve on a free loopback port
# (--port 0 unless the args name one); waits for its "listening on" line and
# leaves $PID, $PORT and $U. Fails (returns 1) when it does not come up. The
# server is stopped at exit.
start_serve() {
  local log=$1; shift
  "$DROVER" serve --port 0 "$@" 2>"$log" &
  PID=$!
  trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$T_TMP"' EXIT
  PORT=
  for _ in $(seq 100); do
    PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  U=http://127.0.0.1:$PORT
  [ -n "$PORT" ] || { echo "drover serve did not start:" >&2; cat "$log" >&2; return 1; }
}

finish() {
  echo "$T_COUNT checks passed, $T_FAILS failed"
  [ "$T_FAILS" -eq 0 ]
}
