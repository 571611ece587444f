#!/usr/bin/env bash
# Slurm (slurmctld, slurmd, sbatch...) and munge for the single-node
# cluster that tests/test_engine_slurm.py, topics/topic-engine-slurm.md and
# bench/bench_slurm.py start (gage/_internal/test_slurm.py).
# Idempotent; quiet when installed; exit 0 when it cannot install.
set -u
need=0
for c in slurmctld slurmd sbatch munged; do
    command -v "$c" >/dev/null 2>&1 || need=1
done
[ "$need" = 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "os-deps/slurm.sh: cannot install slurm-wlm munge (not root or no apt-get); Slurm tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null 2>&1 ||
        echo "os-deps/slurm.sh: apt-get install slurm-wlm munge failed; Slurm tests will skip" >&2
fi
exit 0
