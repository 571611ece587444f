#!/usr/bin/env bash
# Run the example pipeline end to end, then list its runs.
#
# Runs go to $GAGE_RUNS when set, else to a new temp dir, so the demo
# never writes into the repository.
set -euo pipefail
cd "$(dirname "$0")"

export GAGE_RUNS="${GAGE_RUNS:-$(mktemp -d -t gage-demo-XXXXXX)}"
echo "Runs dir: $GAGE_RUNS"

step() { echo; echo "\$ $*"; "$@"; }

step gage run prepare -y
step gage run train lr=0.05 epochs=100 -y
step gage run evaluate -y
# The same config and the same inputs: the completed run is reused.
step gage run train lr=0.05 epochs=100 -y --needed
step gage show evaluate
step gage runs
