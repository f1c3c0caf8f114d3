#!/usr/bin/env bash
# Stops the daemons scripts/dev/slurm-up.sh started in DIR, by the pids in their pid files (TERM, then KILL after 10 s).
set -uo pipefail
dir=${1:?usage: slurm-down.sh DIR}
for f in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || continue
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
done
exit 0
