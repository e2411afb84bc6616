#!/usr/bin/env bash
# Bring up a single-node SLURM on localhost from Debian's packages (slurmctld slurmd slurm-client munge), for the
# cluster test. Idempotent: a running cluster is left as it is. Needs root (or sudo). Works without systemd or
# cgroups: linuxproc process tracking, no task plugin, two fake GPUs (character devices) as GRES.
#
#   tests/cluster/start-slurm.sh          # start (installs the packages first when they are missing)
#   tests/cluster/start-slurm.sh stop     # stop the daemons
set -euo pipefail

# Exit status 3: the packages are missing and cannot be installed here (no root and no sudo, or apt-get fails,
# e.g. without a package mirror); the cluster test skips with this script's reason. Any other failure is a failure.
CANNOT_INSTALL=3
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ "${1:-start}" = "stop" ]; then
  $SUDO pkill -x slurmd || true
  $SUDO pkill -x slurmctld || true
  $SUDO pkill -x munged || true
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
  echo "installing Debian's slurmctld slurmd slurm-client munge"
  if [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; then
    echo "cannot install SLURM: not root and no password-less sudo" >&2
    exit $CANNOT_INSTALL
  fi
  if ! command -v apt-get >/dev/null; then
    echo "cannot install SLURM: no apt-get (the script installs Debian's packages)" >&2
    exit $CANNOT_INSTALL
  fi
  if ! { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q slurmctld slurmd slurm-client munge; }; then
    echo "cannot install SLURM: apt-get could not install slurmctld slurmd slurm-client munge" >&2
    exit $CANNOT_INSTALL
  fi
fi

if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  echo "SLURM already up: $(sinfo -h -o '%P %T %G')"
  exit 0
fi

# munge: the key comes with the package; munged runs as the munge user and needs its runtime folder.
$SUDO mkdir -p /run/munge /var/log/munge /var/lib/munge
$SUDO chown munge:munge /run/munge /var/log/munge /var/lib/munge
$SUDO chmod 0755 /run/munge
if ! pgrep -x munged >/dev/null; then
  $SUDO -u munge /usr/sbin/munged 2>/dev/null || $SUDO runuser -u munge -- /usr/sbin/munged
fi

# Two fake GPUs: character devices with /dev/null's numbers, declared by hand (AutoDetect=off).
for i in 0 1; do
  [ -e "/dev/fakegpu$i" ] || $SUDO mknod "/dev/fakegpu$i" c 1 3
done

# The config sits at SLURM's default location: the job-step plugin drops SLURM_CONF.
hardware=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]*//')
$SUDO mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
$SUDO tee /etc/slurm/slurm.conf >/dev/null <<CONF
# Written by blindspot's tests/cluster/start-slurm.sh: a single-node cluster on localhost.
ClusterName=blindspot
SlurmctldHost=localhost
AuthType=auth/munge
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost${hardware} Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
$SUDO tee /etc/slurm/gres.conf >/dev/null <<CONF
AutoDetect=off
NodeName=localhost Name=gpu File=/dev/fakegpu0
NodeName=localhost Name=gpu File=/dev/fakegpu1
CONF

pgrep -x slurmctld >/dev/null || $SUDO /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || $SUDO /usr/sbin/slurmd -N localhost

for _ in $(seq 1 60); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
  case "$state" in
    idle*|mixed*|allocated*) echo "SLURM up: $(sinfo -h -o '%P %T %c CPUs %m MB %G')"; exit 0 ;;
    drain*|down*) $SUDO scontrol update nodename=localhost state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
echo "SLURM did not come up; see /var/log/slurm/slurmctld.log and /var/log/slurm/slurmd.log" >&2
sinfo >&2 || true
exit 1
