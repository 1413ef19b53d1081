#!/usr/bin/env bash
# Run the grading test files RUNS times in a row (default 10) while a busy loop per core keeps
# every core busy, and print one line per run: the way to show that they are not flaky.
#     bash scripts/grading_under_load.sh [RUNS]     (after `make venv`; as root, like make test)
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
busy=()
for _ in $(seq "$(nproc)"); do python3 -c "while True: pass" & busy+=($!); done
trap 'kill "${busy[@]}" 2>/dev/null' EXIT
failed=0
for i in $(seq "$RUNS"); do
    start=$(date +%s)
    log=$(mktemp)
    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -n 2 --dist loadscope -q -p no:cacheprovider \
        tests/test_class_grading.py tests/test_sandbox.py tests/test_adversarial.py \
        tests/test_postgres_gradebook.py tests/test_grading_unprivileged.py tests/test_stopping.py >"$log" 2>&1
    rc=$?
    echo "run $i/$RUNS: exit $rc in $(( $(date +%s) - start )) s: $(tail -1 "$log")"
    if [ $rc -ne 0 ]; then failed=$((failed + 1)); grep -E "^(FAILED|ERROR)" "$log"; echo "  log: $log"; else rm -f "$log"; fi
done
echo "$failed of $RUNS runs failed"
exit $(( failed > 0 ))
