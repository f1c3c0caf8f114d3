#!/usr/bin/env bash
# A one-node Slurm cluster in DIR for the Slurm test: munged, slurmctld and slurmd started as root, stopped by slurm-down.sh by pid.
#
# Usage: scripts/dev/slurm-up.sh DIR [--install]
#   --install  apt-get install Debian's slurmctld slurmd slurm-client munge first (CI; needs the package registry)
# Everything lives in DIR (config, munge key and socket, state, logs, pid files): /etc is not touched, and the
# clients find this cluster by SLURM_CONF=DIR/slurm.conf (printed last). Ports: SMI_SLURM_PORTS="CTLD SLURMD" [6817 6818].
set -euo pipefail
dir=${1:?usage: slurm-up.sh DIR [--install]}
if [ "${2:-}" = "--install" ] && ! command -v slurmctld >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
for b in munged slurmctld slurmd sinfo srun; do
  command -v "$b" >/dev/null || { echo "slurm-up: $b is not installed (apt-get install slurmctld slurmd slurm-client munge, or pass --install)" >&2; exit 3; }
done
[ "$(id -u)" = 0 ] || { echo "slurm-up: the daemons run as root here (SlurmUser=root)" >&2; exit 3; }
read -r ctld_port slurmd_port <<<"${SMI_SLURM_PORTS:-6817 6818}"
dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
chmod 700 "$dir/munge"
host=$(hostname -s)
# the tasks reach task 0 by this name (the node list), as on a real cluster
getent hosts "$host" >/dev/null || { echo "slurm-up: this host's name '$host' does not resolve (add it to /etc/hosts)" >&2; exit 3; }
cpus=$(nproc)

# munge: a fresh key and its own socket, so that no system munged is needed or disturbed
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"

# the issue's one-node cluster: no cgroups (linuxproc, task/none), CPUs as the consumable, oversubscription allowed
cat >"$dir/slurm.conf" <<CONF
ClusterName=smi
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF" -i
slurmd -f "$SLURM_CONF"

# up when the node is idle (slurmd registered with slurmctld)
for _ in $(seq 1 120); do
  state=$(sinfo -h -N -o %T 2>/dev/null | head -n 1 || true)
  if [ "$state" = idle ]; then
    echo "SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.5
done
echo "slurm-up: the node did not become idle within 60 s (state: ${state:-none}); logs in $dir/log" >&2
exit 1
