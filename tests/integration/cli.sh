# The command table: help, every command's --help, version, bad usage.
. "$(dirname "$0")/lib.sh"

run_drover help
expect_rc 0 "drover help"
expect_out '^  inspect ' "help lists inspect"
cmds=$(printf '%s\n' "$OUT" | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p')
[ -n "$cmds" ] && pass || fail "help lists no commands"

for c in $cmds; do
  run_drover "$c" --help
  expect_rc 0 "drover $c --help"
  expect_out "usage: drover $c" "drover $c --help shows its usage"
  run_drover help "$c"
  expect_rc 0 "drover help $c"
  expect_out "usage: drover $c" "drover help $c shows its usage"
done

run_drover --version
expect_rc 0 "--version"
expect_out '^drover [0-9]+\.[0-9]+\.[0-9]+' "--version names drover's version"
expect_out '^llama\.cpp .*ggml [0-9]' "--version names the llama.cpp build"

run_drover
expect_rc 2 "no command"
expect_err 'usage: drover' "no command prints the usage"

run_drover frobnicate
expect_rc 2 "unknown command"
expect_err "unknown command 'frobnicate'" "unknown command is named"
expect_err 'usage: drover' "unknown command prints the usage"

run_drover --frobnicate
expect_rc 2 "unknown top-level option"
expect_err "unknown option '--frobnicate'" "unknown option is named"

for c in $cmds; do
  [ "$c" = help ] && continue
  run_drover "$c" --no-such-option
  expect_rc 2 "drover $c --no-such-option"
  expect_err "usage: drover $c" "drover $c with a bad option prints its usage"
  [ "$c" = version ] || expect_err "^drover $c: unknown option '--no-such-option'$" "drover $c names the unknown option"
done

# an option that lacks its value is said so, long or short, in every command
for a in "fit --ctx" "serve --port" "synth -q" "history --limit" "nodes --url" "bench -r" \
  "hw --hw" "recommend --ctx" "doctor -m"; do
  run_drover $a
  expect_rc 2 "drover $a"
  expect_err "^drover ${a%% *}: option '${a#* }' needs a value$" "drover $a: the option needs a value"
done

finish
