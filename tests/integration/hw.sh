# drover hw on this machine: cores as lscpu counts them, a measured bandwidth, a
# profile that parses and reads back, and bad usage.
. "$(dirname "$0")/lib.sh"

CORES=$(lscpu -p=core,socket | grep -v '^#' | sort -u | wc -l)
THREADS=$(getconf _NPROCESSORS_ONLN)

run_drover hw
expect_rc 0 "hw"
expect_out "^cores +[0-9]+ sockets?, $CORES physical cores, $THREADS logical CPUs$" \
  "physical cores = lscpu's ($CORES)"
expect_out '^bandwidth +[0-9]+\.[0-9] GB/s read' "bandwidth measured"
if printf '%s\n' "$OUT" | awk '/^bandwidth/ { exit !($2 > 0) }'; then pass; else
  fail "bandwidth above zero: $OUT"; fi
expect_out '^  CPU +cpu ' "llama.cpp's CPU device listed"
expect_out '^ram +[0-9.]+ [KMGT]iB total' "ram"

run_drover hw --quick --json
expect_rc 0 "hw --quick --json"
printf '%s\n' "$OUT" > "$T_TMP/hw.json"
if printf '%s' "$OUT" | CORES=$CORES THREADS=$THREADS node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const bad = [];
  if (j.version !== 1) bad.push("version");
  if (j.cpu.cores !== +process.env.CORES) bad.push("cpu.cores " + j.cpu.cores);
  if (j.cpu.threads !== +process.env.THREADS) bad.push("cpu.threads " + j.cpu.threads);
  if (!Array.isArray(j.cpu.features)) bad.push("cpu.features");
  if (!(j.memory.total_bytes > 0)) bad.push("memory.total_bytes");
  if (j.memory.bandwidth_gbps !== null) bad.push("--quick measured bandwidth");
  if (!j.devices.some(d => d.type === "cpu")) bad.push("no cpu device");
  for (const k of ["amd", "nvidia", "problems"]) if (!Array.isArray(j[k])) bad.push(k);
  if (bad.length) { console.error(bad.join(", ")); process.exit(1); }
'; then pass; else fail "--json fields"; fi

# the profile reads back and prints the same profile again
run_drover hw --check "$T_TMP/hw.json" --json
expect_rc 0 "hw --check of its own profile"
if [ "$OUT" = "$(cat "$T_TMP/hw.json")" ]; then pass; else fail "round trip differs: $OUT"; fi
run_drover hw --check "$T_TMP/hw.json"
expect_rc 0 "hw --check as a table"
expect_out "physical cores" "table from a profile"

# a profile with a field missing names the field
grep -v '"cores"' "$T_TMP/hw.json" > "$T_TMP/nocores.json"
run_drover hw --check "$T_TMP/nocores.json"
expect_rc 1 "profile without cpu.cores"
expect_err "^drover hw: $T_TMP/nocores.json: cpu.cores: missing$" "names cpu.cores"
expect_lines 1 "$ERR" "one line on stderr"
run_drover hw --check /etc/passwd
expect_rc 1 "not JSON"
expect_err 'not JSON' "says not JSON"
run_drover hw --check "$T_TMP/missing.json"
expect_rc 1 "missing profile"

run_drover hw --bogus
expect_rc 2 "unknown option"
run_drover hw extra
expect_rc 2 "extra argument"
run_drover hw --check
expect_rc 2 "--check without FILE"
run_drover hw --help
expect_rc 0 "--help"
expect_out '^usage: drover hw' "usage"

finish
