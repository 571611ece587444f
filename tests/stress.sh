#!/bin/sh
# `make stress`: each topic alone TOPIC_REPEAT times in a row (one pytest
# process per topic, pytest-repeat's --count), then the whole suite
# SUITE_REPEAT times, each in a new random order (pytest-randomly, seed
# printed). One run at a time: the machine is shared. Ends with the
# number of failed tests; exits 1 unless it is 0.
#
# PY (python of the venv), TOPIC_REPEAT, SUITE_REPEAT and TOPICS (a
# glob) come from the Makefile.

PY=${PY:-.venv/bin/python}
TOPIC_REPEAT=${TOPIC_REPEAT:-2}
SUITE_REPEAT=${SUITE_REPEAT:-2}
TOPICS=${TOPICS:-topics/*.md}

failed=0
passed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count() {
    # count WORD: the number before WORD in pytest's last line (0 if none)
    n=$(tail -n 1 "$log" | grep -o "[0-9]* $1" | cut -d' ' -f1)
    echo "${n:-0}"
}

tally() {
    f=$(count failed)
    e=$(count error)
    p=$(count passed)
    if [ "$1" -ne 0 ] && [ "$f" -eq 0 ] && [ "$e" -eq 0 ]; then
        f=1  # pytest failed without a failed test (collection, usage)
    fi
    failed=$((failed + f + e))
    passed=$((passed + p))
    if [ "$1" -ne 0 ]; then
        cat "$log"
    fi
}

echo "== each topic alone, $TOPIC_REPEAT times in a row"
for topic in $TOPICS; do
    "$PY" -m pytest -q -p no:randomly --count="$TOPIC_REPEAT" "$topic" >"$log" 2>&1
    rc=$?
    echo "$topic: $(tail -n 1 "$log")"
    tally $rc
done

i=1
while [ "$i" -le "$SUITE_REPEAT" ]; do
    seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    echo "== whole suite, random order $i of $SUITE_REPEAT (--randomly-seed=$seed)"
    "$PY" -m pytest -q -p randomly --randomly-seed="$seed" >"$log" 2>&1
    rc=$?
    tail -n 1 "$log"
    tally $rc
    i=$((i + 1))
done

echo "== stress: $passed passed, $failed failed ($("$PY" --version))"
[ "$failed" -eq 0 ]
