#!/usr/bin/env bash
# Every test, in three groups (`make test` runs this after the setup):
#   1. the model tests (everything not marked live or browser: models, notebooks on the test
#      driver, doctests), in the background, their output kept in build/test-models.log;
#   2. beside them, the host tests (live and browser tests not marked `alone`), one after
#      another: they boot guests, serve notebooks, read real images, but measure no time;
#   3. then, by themselves, the tests marked `alone`: they measure CPU shares or timings, or
#      kill runs and count every kvmlab- object left.
# The exit status is non-zero if any group failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
mkdir -p build
log=build/test-models.log
"$BIN/pytest" -m "not live and not browser" >"$log" 2>&1 &
models=$!
"$BIN/pytest" -m "(live or browser) and not alone"
host=$?
wait "$models"
models_status=$?
echo "===== the model tests, run beside the host tests (their log: $log) ====="
cat "$log"
"$BIN/pytest" -m "alone"
alone=$?
echo "model tests: exit $models_status; host tests: exit $host; tests alone: exit $alone"
exit $(( models_status || host || alone ))
