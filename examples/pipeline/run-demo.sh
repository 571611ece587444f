#!/usr/bin/env bash
# Run the example pipeline end to end with `gage repro`, show why a
# step reruns, run a small batch, then list the runs.
#
# Runs go to $GAGE_RUNS when set (and are kept), else to a new temp dir
# that is removed when the demo ends, so the demo never writes into the
# repository and leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")"

if [ -z "${GAGE_RUNS:-}" ]; then
    GAGE_RUNS="$(mktemp -d -t gage-demo-XXXXXX)"
    trap 'rm -rf "$GAGE_RUNS"' EXIT
fi
export GAGE_RUNS
echo "Runs dir: $GAGE_RUNS"

step() { echo; echo "\$ $*"; "$@"; }

step gage dag --no-status
# Nothing has run yet: every step would run, in dependency order.
step gage repro --dry
step gage repro
# Nothing changed: every step is up to date and nothing runs.
step gage repro
# A config value for one step: --dry says what differs and what follows.
step gage repro train.lr=0.1 --dry
step gage repro train.lr=0.1 -q
step gage dag
# A batch of trials of train, two at a time.
step gage run train lr=[0.05,0.1] epochs=[100,200] -y -q --jobs 2 --needed
step gage show evaluate
step gage runs
