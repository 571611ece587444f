#!/usr/bin/env bash
# Run the example pipeline end to end with `gage repro`, show why a
# step reruns, run a small batch, then list the runs.
#
# Runs go to $GAGE_RUNS when set, else to a new temp dir, so the demo
# never writes into the repository.
set -euo pipefail
cd "$(dirname "$0")"

export GAGE_RUNS="${GAGE_RUNS:-$(mktemp -d -t gage-demo-XXXXXX)}"
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
