#!/usr/bin/env bash
# The tiny config through profiles/slurm on a real one-node SLURM cluster on localhost.
#   sudo bash tests/slurm_integration.sh      (root; run by .ci/run)
# Installs slurmctld/slurmd/slurm-client/munge with apt-get when missing, starts munged,
# slurmctld and slurmd, runs one SFD row of the workflow through sbatch with the unedited profile (this
# cluster's partition and sizes as command-line overrides) (training rules ask for 2 GPUs,
# the node advertises 2 GPU GRES, so they run under torchrun with 2 data-parallel CPU
# processes), checks one SFD row's metrics, then makes a job fail and checks that it surfaces as a
# failed Snakemake job with its log and no half-written output. The daemons are stopped
# by PID on exit. Idempotent: it refuses to touch an /etc/slurm/slurm.conf it did not write.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T0=$(date +%s)
[ "$(id -u)" = 0 ] || { echo "slurm_integration.sh: run as root (installs and starts daemons)" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
   || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

CONF=/etc/slurm/slurm.conf   # fixed: the executor's job step strips SLURM_* (so SLURM_CONF too)
MARK="# written by diffdistill tests/slurm_integration.sh"
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  echo "slurm_integration.sh: $CONF exists and is not ours; not touching a real cluster" >&2; exit 1
fi
WORK=$(mktemp -d /tmp/dd-slurm.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP   # a signal stops the daemons too (the EXIT trap runs)

# munge: a key, and a socket folder of mode 755 (SLURM's clients must reach the socket)
[ -s /etc/munge/munge.key ] || { mungekey -c -f 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; }
chown munge:munge /etc/munge/munge.key 2>/dev/null || true; chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge; chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 755 /run/munge
if [ -f /run/munge/dd-munged.pid ] && kill -0 "$(cat /run/munge/dd-munged.pid)" 2>/dev/null; then
  kill "$(cat /run/munge/dd-munged.pid)"; sleep 1   # ours, left by an interrupted run
fi
runuser -u munge -- munged --pid-file=/run/munge/dd-munged.pid --socket=/run/munge/munge.socket.2 \
  --log-file=/var/log/munge/dd-munged.log --force
PIDS+=("$(cat /run/munge/dd-munged.pid)")

HOST=$(hostname -s); NCPU=$(nproc); MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
mkdir -p /etc/slurm "$WORK/state" "$WORK/spool"
cat > "$CONF" <<EOF
$MARK
ClusterName=ddtest
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# no accounting storage: the profile polls squeue; finished jobs stay visible 300 s
# (>= 3 x slurm-init-seconds-before-status-checks)
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=300
MpiDefault=none
GresTypes=gpu
NodeName=ddnode NodeHostname=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ddnode Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
# two pretend GPUs (no device files): exercises --gpus and the torchrun launch on CPU
printf '%s\nNodeName=ddnode Name=gpu File=/dev/null\nNodeName=ddnode Name=gpu File=/dev/zero\n' "$MARK" \
  > /etc/slurm/gres.conf
slurmctld -i; sleep 1; PIDS+=("$(cat "$WORK/slurmctld.pid")")
slurmd -N ddnode; sleep 1; PIDS+=("$(cat "$WORK/slurmd.pid")")
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -qx -e idle -e drain -e inval && break; sleep 1; done
sinfo -h -o "%P %T %G" | grep -q idle || { cat "$WORK"/slurm*.log >&2; echo "slurm: node not idle" >&2; exit 1; }

# the project's profiles, unedited (profiles/default too: Snakemake loads it beside
# --profile profiles/slurm, and it must not replace the cluster's settings); this
# cluster's settings go on the command line: partition, no accounts, and threads and
# memory a 2-CPU node can hold (GPU counts kept): 2 threads for the training rules, 1 for
# the others. CPUs come from threads: a training job must ask SLURM for 2 CPUs.
RUN="$WORK/run"; mkdir -p "$RUN"
for name in Snakefile workflow params.yaml config envs profiles; do cp -r "$ROOT/$name" "$RUN/"; done
cd "$RUN"
SMK="$ROOT/.venv/bin/snakemake"
read -r SETS THREADS < <("$ROOT/.venv/bin/python" -c '
import yaml
prof = yaml.safe_load(open("profiles/slurm/config.yaml"))
small = {"mem_mb": 500}
res = " ".join(f"{r}:{k}={small.get(k, v)}" for r, d in prof["set-resources"].items() for k, v in d.items())
training = ("train", "distill")
threads = " ".join(f"{r}={2 if r.startswith(training) else 1}" for r in prof["set-threads"])
print(res.replace(" ", ","), threads.replace(" ", ","))')
LOCAL=(--slurm-no-account --default-resources slurm_partition=debug mem_mb=500 runtime=60
       --set-resources ${SETS//,/ } --set-threads ${THREADS//,/ } --slurm-init-seconds-before-status-checks 5)
T1=$(date +%s)
# one SFD row end to end (teacher and SFD under torchrun, trajectories, features, sampling,
# metrics): every kind of job once, not the whole DAG (each SLURM job costs ~10-20 s here)
FID=results/fid/students/sfd/default/nfe2/fid.json
"$SMK" --profile profiles/slurm "$FID" --configfile config/test.yaml "${LOCAL[@]}" > "$WORK/ok.log" 2>&1 \
  || { tail -50 "$WORK/ok.log" >&2; cat results/logs/slurm/*/*.log 2>/dev/null | tail -50 >&2; exit 1; }
T2=$(date +%s)
diff -r "$ROOT/profiles" profiles >/dev/null || { echo "slurm: a profile file was changed" >&2; exit 1; }
grep -q '"fid_sets"' "$FID"
# trained to the tiny config's cap (its curve is too short for the plateau rule to end it)
ITERS=$("$ROOT/.venv/bin/python" -c 'import yaml; print(yaml.safe_load(open("config/test.yaml"))["sfd"]["iters"])')
grep -q "\"iterations\": $ITERS" results/students/sfd/default/nfe2/model.pt.meta.json \
  || { echo "slurm: the SFD student did not train its $ITERS iterations" >&2; exit 1; }
grep -q "nproc_per_node 2" "$WORK/ok.log"   # training ran under torchrun on the 2 GPUs it asked for
# CPUs from threads: the SFD job (2 threads) asked SLURM for 2 CPUs (finished jobs stay visible MinJobAge)
sfd_job=$(grep -o "SLURM jobid [0-9]* (log: [^)]*rule_distill_sfd" "$WORK/ok.log" | head -1 | awk '{print $3}')
[ -n "$sfd_job" ] || { echo "slurm: no SLURM job of rule distill_sfd in the log" >&2; exit 1; }
cpus=$(scontrol show job "$sfd_job" | grep -o "NumCPUs=[0-9]*" | head -1)
[ "$cpus" = "NumCPUs=2" ] || { echo "slurm: distill_sfd's job $sfd_job got $cpus, not its 2 threads" >&2; exit 1; }
njobs=$(grep -c "Job .* has been submitted with SLURM jobid" "$WORK/ok.log" || true)
echo "slurm: workflow through sbatch ok ($njobs SLURM jobs, $((T2 - T1)) s)"

# a failed SLURM job: a corrupt teacher makes teacher_trajectories fail
echo "not a checkpoint" > results/teacher/model.pt
traj=$(ls results/trajectories/*/nfe2/traj.pt)
if "$SMK" --profile profiles/slurm "$traj" --configfile config/test.yaml "${LOCAL[@]}" > "$WORK/fail.log" 2>&1; then
  echo "slurm: the failing job did not fail" >&2; exit 1
fi
grep -q "Error in rule teacher_trajectories" "$WORK/fail.log"
slurm_log=$(grep -o "[^ ']*results/logs/slurm/[^ ']*\.log" "$WORK/fail.log" | head -1)
[ -n "$slurm_log" ] && [ -s "$slurm_log" ] || { tail -30 "$WORK/fail.log" >&2; echo "slurm: no SLURM log path" >&2; exit 1; }
[ ! -e "$traj" ] || { echo "slurm: failed job left $traj" >&2; exit 1; }
[ -z "$(find results -name '.*.tmp')" ] || { echo "slurm: half-written files left" >&2; exit 1; }
echo "slurm: failed job surfaced with its log ($slurm_log), no output left"
echo "slurm_integration.sh: passed in $(( $(date +%s) - T0 )) s"
