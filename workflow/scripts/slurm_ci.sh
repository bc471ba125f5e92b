#!/usr/bin/env bash
# A single-node SLURM cluster on localhost for CI, and the smoke DAG run through it (Debian 12, as root).
#
#   bash workflow/scripts/slurm_ci.sh smoke     # install, up, smoke DAG via --executor slurm, check, down
#   bash workflow/scripts/slurm_ci.sh faults    # install, up, time-limit and kill a training mid-epoch, check, down
#   bash workflow/scripts/slurm_ci.sh install   # apt-get install slurmctld slurmd slurm-client munge (if missing)
#   bash workflow/scripts/slurm_ci.sh up        # start munged, slurmctld, slurmd; wait until the node is idle
#   bash workflow/scripts/slurm_ci.sh down      # cancel jobs, stop every daemon `up` started, remove its config
#
# `smoke` submits with the user-facing profile (profiles/slurm) unchanged, GPU requests included: the node
# advertises two fake GPUs (gres backed by /dev/null and /dev/zero) and, through SlurmdParameters=config_overrides,
# more CPUs and memory than the machine has, so the profile's per-rule sbatch requests fit. On top of the profile:
#   --slurm-status-command squeue  (without slurmdbd, the default `sacct` fails on every poll and the plugin waits
#                                   forever; squeue needs MinJobAge >= 3 x the first-check delay: 600 s >= 3 x 2 s)
#   --slurm-init-seconds-before-status-checks 2   (first poll after 2 s instead of 40 s: these jobs take seconds)
#   --slurm-no-account             (no accounts exist; plugin 2.8.0 ignores the flag, fails to guess one and
#                                   submits without -A, which is what we want)
#   --slurm-keep-successful-logs   (the per-job SLURM logs stay under <workdir>/logs/slurm for inspection)
# slurm.conf has to be /etc/slurm/slurm.conf: the jobstep plugin drops SLURM_CONF before the inner srun.
#
# `faults` runs tests/configs/slurm_faults.yaml through sbatch: three experiments with the same settings, trained at
# once (one epoch of about two minutes). `limited` gets a 1-minute time limit: SLURM sends SIGTERM (SIGKILL
# KillWait seconds later), the job saves at the next batch and exits, Snakemake resubmits it with the same limit,
# and it goes on from that batch, until the epoch is done. `killed` is disturbed three times, each a few seconds
# after a time-budget checkpoint: its training process is SIGKILLed (as by the OOM killer: no chance to save; the
# resubmission goes on from that checkpoint), the resubmitted job is cancelled (`scancel`: SIGTERM, like the time
# limit; even `scancel --signal=KILL` cancels with SIGTERM first), and the next one is requeued (`scontrol requeue`,
# what preemption does under PreemptMode=REQUEUE; the profile submits with --requeue), so SLURM restarts it under
# the same id. `undisturbed` is left alone. It lists every sbatch job with its state, every attempt's stops and
# resumptions, and requires the three experiments' rows to be identical but for their names and wall times.
#
# Knobs: SLURM_CI_DIR (daemon state, default /tmp/slurm-ci), SLURM_CI_WORKDIR (where the smoke DAG runs, default
# /tmp/slurm-ci-smoke), SLURM_CI_TIMEOUT (hard limit of the snakemake run in s, default 300; 600 for `faults`),
# SNAKEMAKE (binary; `python` beside it compares the rows).
# Exit codes: 0 ok, 1 failure, 3 this machine cannot host the cluster (not root, no apt, packages unavailable).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
D="${SLURM_CI_DIR:-/tmp/slurm-ci}"
WORK="${SLURM_CI_WORKDIR:-/tmp/slurm-ci-smoke}"
TIMEOUT="${SLURM_CI_TIMEOUT:-300}"
ETC=/etc/slurm
MARK="# written by snnlib workflow/scripts/slurm_ci.sh"
PKGS="slurmctld slurmd slurm-client munge"
DAEMONS="slurmctld slurmd slurmstepd"
STARTED=0  # set once `up` begins to change the machine; only then does the exit handler call `down`

log() { echo "[slurm_ci] $*" >&2; }
cannot() { log "cannot run here: $*"; exit 3; }

wait_for() {  # wait_for SECONDS CMD... : poll CMD until it succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || { log "timed out waiting for: $*"; return 1; }
        sleep 0.25
    done
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

pidfile_pid() { [ -s "$1" ] && cat "$1" || true; }

descendants() {  # every descendant PID of PID $1, read from /proc (a bare CI image may lack procps)
    local f stat pid fields pids="" frontier="$1" next c
    local -A parent=()
    for f in /proc/[0-9]*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        pid=${f#/proc/}; pid=${pid%/stat}
        read -r -a fields <<<"${stat##*) }"  # after the command name: state, ppid, ...
        parent[$pid]=${fields[1]}
    done
    while [ -n "$frontier" ]; do
        next=""
        for c in "${!parent[@]}"; do
            case " $frontier " in *" ${parent[$c]} "*) next="$next $c"; pids="$pids $c" ;; esac
        done
        frontier=${next# }
    done
    echo $pids
}

stop_pid() {  # stop_pid PID NAME: SIGTERM, wait up to 10 s, then SIGKILL
    local pid=$1 name=$2
    alive "$pid" || return 0
    kill "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if alive "$pid"; then log "$name ($pid) ignored SIGTERM; SIGKILL"; kill -9 "$pid" 2>/dev/null || true; fi
}

leftover_daemons() {  # "PID name" of every process named like one of the given daemons
    local f comm
    for f in /proc/[0-9]*/comm; do
        comm=$(cat "$f" 2>/dev/null) || continue
        case " $* " in *" $comm "*) echo "${f//[^0-9]/} $comm" ;; esac
    done
}

install_packages() {
    [ "$(id -u)" = 0 ] || cannot "needs root (it writes /etc/slurm and starts daemons)"
    # shellcheck disable=SC2086
    dpkg -s $PKGS >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null || cannot "no apt-get, and $PKGS are not installed"
    log "installing $PKGS"
    # shellcheck disable=SC2086
    if ! { timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 300 \
            apt-get install -y -qq --no-install-recommends $PKGS >/dev/null; }; then
        cannot "apt-get install $PKGS failed (no network or no Debian repository?)"
    fi
}

up() {
    install_packages
    if [ -e "$ETC/slurm.conf" ] && ! grep -qF "$MARK" "$ETC/slurm.conf"; then
        cannot "$ETC/slurm.conf exists and is not ours: a SLURM installation is configured on this machine"
    fi
    local busy
    busy=$(leftover_daemons $DAEMONS)
    [ -z "$busy" ] || cannot "SLURM daemons already run here: $(echo $busy)"
    STARTED=1
    rm -rf "$D"
    mkdir -p "$D"/{state,spool,log} "$ETC"

    # munge: reuse a running munged, otherwise start one and remember that we own it.
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
        install -d -o munge -g munge -m 0755 /run/munge
        runuser -u munge -- /usr/sbin/munged
        wait_for 10 sh -c 'munge -n | unmunge'
        cp /run/munge/munged.pid "$D/munged.pid"
    fi

    # Two fake GPUs: gres wants one character device per GPU, and no cgroup guards devices here.
    { echo "$MARK"; echo "AutoDetect=off"
      echo "NodeName=localhost Name=gpu Type=fake File=/dev/null"
      echo "NodeName=localhost Name=gpu Type=fake File=/dev/zero"; } > "$ETC/gres.conf"
    cat > "$ETC/slurm.conf" <<EOF
$MARK
ClusterName=snnlibci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# no cgroups: processes are tracked through /proc
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
# believe the node line below, not the hardware: the profile's requests must fit one 2-core CI machine
SlurmdParameters=config_overrides
ReturnToService=2
# finished jobs stay visible to squeue/scontrol for 10 min (status polling and the checks below need them)
MinJobAge=600
# at a time limit (checked every 30 s: a 1-minute job ends 60-90 s after it starts), on preemption and on scancel,
# every process of the job gets SIGTERM, then SIGKILL this many seconds later (30 is SLURM's default; spelled out
# because training relies on it: it saves at the next batch boundary, well inside it)
KillWait=30
OverTimeLimit=0
# a requeued job (preemption, scontrol requeue) waits cred_expire seconds before it starts again: 120 by default;
# and pending jobs are looked at every 5 s, not 60
AuthInfo=cred_expire=30
SchedulerParameters=sched_interval=5,bf_interval=5
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=16 RealMemory=131072 Gres=gpu:fake:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    /usr/sbin/slurmctld -c  # -c: clean state, forget any earlier run
    /usr/sbin/slurmd -N localhost
    if ! wait_for 30 sh -c 'sinfo -h -o %T | grep -qx idle'; then
        sinfo -N -l >&2 || true
        tail -n 20 "$D/log/slurmctld.log" "$D/log/slurmd.log" >&2 || true
        return 1
    fi
    log "cluster up: $(sinfo -h -o '%P %a %D %T %N %G')"
}

down() {
    if command -v squeue >/dev/null && alive "$(pidfile_pid "$D/slurmctld.pid")"; then
        local jobs
        jobs=$(squeue -h -t PD,R,CG,S -o %i 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            log "cancelling jobs: $(echo $jobs)"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            wait_for 20 sh -c '[ -z "$(squeue -h -t PD,R,CG,S -o %i)" ]' || true
        fi
    fi
    # Should a job outlive scancel: note its processes before slurmd goes. slurmstepd detaches from slurmd, so it is
    # found by name; `up` refused to start while any slurmstepd ran, so every one now belongs to this cluster.
    local slurmd_pid stragglers="" p
    slurmd_pid=$(pidfile_pid "$D/slurmd.pid")
    alive "$slurmd_pid" && stragglers=$(descendants "$slurmd_pid")
    for p in $(leftover_daemons slurmstepd | cut -d' ' -f1); do stragglers="$stragglers $p $(descendants "$p")"; done
    stop_pid "$slurmd_pid" slurmd
    stop_pid "$(pidfile_pid "$D/slurmctld.pid")" slurmctld
    for p in $stragglers; do stop_pid "$p" "job process"; done
    local watch="$DAEMONS"
    if [ -s "$D/munged.pid" ]; then watch="$watch munged"; stop_pid "$(cat "$D/munged.pid")" munged; fi
    for f in "$ETC/slurm.conf" "$ETC/gres.conf"; do
        if [ -e "$f" ] && grep -qF "$MARK" "$f"; then rm -f "$f"; fi
    done
    rm -rf "$D"
    local left
    # shellcheck disable=SC2086
    left=$(leftover_daemons $watch)
    if [ -n "$left" ]; then log "still running after down: $(echo $left)"; return 1; fi
    log "cluster down; none of $watch is running"
}

find_snakemake() {
    local snakemake="${SNAKEMAKE:-}"
    [ -n "$snakemake" ] || { [ -x "$REPO/.venv/bin/snakemake" ] && snakemake="$REPO/.venv/bin/snakemake"; } \
        || snakemake=$(command -v snakemake) || { log "snakemake not found"; return 1; }
    echo "$snakemake"
}

smoke() {
    local snakemake
    snakemake=$(find_snakemake) || return 1
    install_packages
    up
    rm -rf "$WORK"
    mkdir -p "$WORK"
    local smk_log="$WORK/snakemake.log" rc=0 t0=$SECONDS
    log "running the smoke DAG through sbatch (hard limit ${TIMEOUT}s); log: $smk_log"
    timeout -s KILL "$TIMEOUT" "$snakemake" --snakefile "$REPO/Snakefile" --directory "$WORK" \
        --profile "$REPO/profiles/slurm" --configfile "$REPO/config/smoke.yaml" \
        --slurm-status-command squeue --slurm-init-seconds-before-status-checks 2 --slurm-no-account \
        --slurm-keep-successful-logs >"$smk_log" 2>&1 || rc=$?
    log "snakemake exited with $rc after $((SECONDS - t0)) s"
    [ "$rc" = 0 ] || { tail -n 40 "$smk_log" >&2; [ "$rc" = 137 ] && log "killed by the ${TIMEOUT}s limit"; return 1; }
    check "$smk_log"
}

check() {  # every non-local job of the run went through sbatch and COMPLETED with exit code 0
    local smk_log=$1 remote ids id info state exitcode failed=0
    remote=$(grep -cE '^rule [A-Za-z0-9_]+:$' "$smk_log" || true)
    ids=$(sed -nE 's/.*has been submitted with SLURM jobid ([0-9]+).*/\1/p' "$smk_log")
    [ "$remote" -gt 0 ] || { log "no cluster job ran"; return 1; }
    if [ "$(echo "$ids" | wc -w)" != "$remote" ]; then
        log "$remote cluster jobs in the DAG, but $(echo "$ids" | wc -w) sbatch submissions"; return 1
    fi
    for id in $ids; do
        info=$(scontrol -o show job "$id")
        state=$(sed -nE 's/.*JobState=([A-Z_]+).*/\1/p' <<<"$info")
        exitcode=$(sed -nE 's/.* ExitCode=([0-9:]+).*/\1/p' <<<"$info")
        echo "slurm job $id: $(sed -nE 's/.*Comment=([^ ]+).*/\1/p' <<<"$info") $state exit=$exitcode" \
            "cpus=$(sed -nE 's/.* NumCPUs=([0-9]+).*/\1/p' <<<"$info")" \
            "tres=$(sed -nE 's/.* TresPerJob=([^ ]+).*/\1/p' <<<"$info")"
        [ "$state" = COMPLETED ] && [ "$exitcode" = 0:0 ] || failed=1
    done
    grep -qE '([0-9]+) of \1 steps \(100%\) done' "$smk_log" || { log "the DAG did not finish"; failed=1; }
    [ "$failed" = 0 ] || { log "some jobs did not complete"; return 1; }
    log "all $remote cluster jobs went through sbatch and completed"
}

FAULTS_CONFIG="$REPO/tests/configs/slurm_faults.yaml"
FAULTS_RUN=runs/slurm_faults
FAULTS_LOGS=logs/slurm_faults/train
# the logging prefix of snnlib/progress.py's FORMAT, "2026-11-30T04:15:02Z INFO snnlib.training: "
LOG_PREFIX='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z [A-Z]+ [A-Za-z0-9_.]+: '

job_of() {  # job_of COMMENT: the id of the running job with this comment (the plugin's rule_<rule>_wildcards_...)
    squeue -h -t R -o '%i %k' | awk -v c="$1" '$2 == c {print $1; exit}'
}

training_pid() {  # training_pid EXP: the `python -m snnlib train ... --experiment EXP` process, not the shell
    # around it (read from /proc: a bare CI image may lack procps)
    local f args
    for f in /proc/[0-9]*/cmdline; do
        args=$(tr '\0' '\n' <"$f" 2>/dev/null) || continue
        [ "$(sed -n '2,4p' <<<"$args" | tr '\n' ' ')" = "-m snnlib train " ] || continue
        [ "$(sed -n '/^--experiment$/{n;p;q}' <<<"$args")" = "$1" ] || continue
        f=${f#/proc/}
        echo "${f%/cmdline}"
        return 0
    done
    return 1
}

saved_after_resume() {  # saved_after_resume N LOG: LOG shows a mid-epoch checkpoint after its N-th resumption
    awk -v n="$1" '/^resumed from/ {r++} r >= n && /^checkpoint saved in epoch/ {found = 1} END {exit !found}' "$2"
}

disturb_killed() {  # the `killed` experiment's training, each time a few seconds after a mid-epoch checkpoint:
    # SIGKILL of the training process (an OOM kill: no chance to save, that work is lost, nothing before it), then
    # scancel of the resubmitted job, then `scontrol requeue` of the next one (what preemption does)
    local keep="$WORK/attempts/killed.log" comment=rule_train_wildcards_killed_0_qcfs id pid
    wait_for 400 saved_after_resume 0 "$keep" || { log "no mid-epoch checkpoint in $keep"; return 1; }
    sleep 4
    pid=$(training_pid killed) || { log "no training process of killed"; return 1; }
    log "SIGKILL to the training process $pid of killed, 4 s after: $(grep '^checkpoint saved' "$keep" | tail -n 1)"
    kill -KILL "$pid"
    wait_for 400 saved_after_resume 1 "$keep" || { log "the resubmitted job never saved"; return 1; }
    id=$(job_of "$comment")
    [ -n "$id" ] || { log "no running job $comment to cancel"; return 1; }
    log "scancel of SLURM job $id ($comment)"
    scancel "$id"
    wait_for 400 saved_after_resume 2 "$keep" || { log "the resubmitted job never saved"; return 1; }
    id=$(job_of "$comment")
    [ -n "$id" ] || { log "no running job $comment to requeue"; return 1; }
    log "scontrol requeue of SLURM job $id ($comment), as a preemption does"
    scontrol requeue "$id"
}

faults() {
    local snakemake py rc=0 t0=$SECONDS limit="${SLURM_CI_TIMEOUT:-600}"
    snakemake=$(find_snakemake) || return 1
    py="$(dirname "$snakemake")/python"
    [ -x "$py" ] || py=python3
    install_packages
    up
    rm -rf "$WORK"
    mkdir -p "$WORK"
    local smk_log="$WORK/snakemake.log" disturber keepers="" exp
    # Snakemake clears a job's log before each attempt: keep every attempt's lines (tail -F follows the name), each
    # without its logging prefix, so the checks read bare messages
    mkdir -p "$WORK/attempts"
    for exp in limited killed undisturbed; do
        tail -n +1 -F "$WORK/$FAULTS_LOGS/${exp}_seed0_qcfs.log" 2>/dev/null \
            > >(sed -u -E "s/$LOG_PREFIX//" >"$WORK/attempts/$exp.log") &
        keepers="$keepers $!"
    done
    log "three trainings through sbatch: limited (1-minute limit), killed (SIGKILL, scancel, requeue), undisturbed;" \
        "hard limit ${limit}s; log: $smk_log"
    # the target comes first: --set-threads and --set-resources take every word after them
    timeout -s KILL "$limit" "$snakemake" "$FAULTS_RUN/results.csv" --snakefile "$REPO/Snakefile" \
        --configfile "$FAULTS_CONFIG" --directory "$WORK" --profile "$REPO/profiles/slurm" --retries 5 \
        --set-threads train=1 convert=1 evaluate=1 unevenness=1 \
        --set-resources "train:runtime=1 if wildcards.exp == 'limited' else 15" train:cpus_per_task=1 \
        train:mem_mb=2000 --slurm-status-command squeue --slurm-init-seconds-before-status-checks 2 \
        --slurm-no-account --slurm-keep-successful-logs >"$smk_log" 2>&1 &
    local smk=$!
    disturb_killed &
    disturber=$!
    wait "$smk" || rc=$?
    if alive "$disturber"; then kill "$disturber" 2>/dev/null || true; fi
    wait "$disturber" || { log "the killed experiment was not disturbed as planned"; [ "$rc" != 0 ] || rc=1; }
    sleep 2
    # shellcheck disable=SC2086
    kill $keepers 2>/dev/null || true
    log "snakemake exited with $rc after $((SECONDS - t0)) s"
    [ "$rc" = 0 ] || { tail -n 60 "$smk_log" >&2; [ "$rc" = 137 ] && log "killed by the ${limit}s limit"; }
    list_jobs "$smk_log"
    for exp in limited killed undisturbed; do
        echo "training log of $exp, every attempt ($WORK/attempts/$exp.log):"
        grep -E '^(stopped:|resumed from|epoch [0-9]+/|error:)' "$WORK/attempts/$exp.log" | sed 's/^/  /' || true
    done
    [ "$rc" = 0 ] || return 1
    # the rows of the three experiments, but for their names and how long their jobs took, are identical
    "$py" - "$WORK/$FAULTS_RUN/results.csv" <<'PY' || { log "the disturbed trainings' rows differ"; return 1; }
import sys
import pandas as pd
rows = pd.read_csv(sys.argv[1]).drop(columns=["train_wall_s", "train_epoch_s", "eval_wall_s", "timestamp"])
ref = rows[rows.experiment == "undisturbed"].drop(columns="experiment").reset_index(drop=True)
for exp in ("limited", "killed"):
    got = rows[rows.experiment == exp].drop(columns="experiment").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    print(f"rows of {exp}: identical to undisturbed ({len(got)} rows, {len(got.columns)} columns)")
PY
    log "the time-limited, killed and requeued trainings resumed mid-epoch; their rows equal the undisturbed one's"
}

list_jobs() {  # one line per sbatch job of the run: id, comment, state, exit code
    local id info
    for id in $(sed -nE 's/.*has been submitted with SLURM jobid ([0-9]+).*/\1/p' "$1"); do
        info=$(scontrol -o show job "$id" 2>/dev/null) || { echo "slurm job $id: (no longer known)"; continue; }
        echo "slurm job $id: $(sed -nE 's/.*Comment=([^ ]+).*/\1/p' <<<"$info")" \
            "$(sed -nE 's/.*JobState=([A-Z_]+).*/\1/p' <<<"$info") exit=$(sed -nE 's/.* ExitCode=([0-9:]+).*/\1/p' \
            <<<"$info") run=$(sed -nE 's/.* RunTime=([0-9:-]+).*/\1/p' <<<"$info")" \
            "limit=$(sed -nE 's/.* TimeLimit=([0-9:-]+|UNLIMITED).*/\1/p' <<<"$info")" \
            "restarts=$(sed -nE 's/.* Restarts=([0-9]+).*/\1/p' <<<"$info")"
    done
}

on_exit() {  # whatever happened, a `smoke` run leaves no daemon behind; its exit code says what happened
    local rc=$?
    trap - EXIT
    if [ "$STARTED" = 1 ]; then down || rc=$((rc ? rc : 1)); fi
    exit "$rc"
}

case "${1:-}" in
    install) install_packages ;;
    up) trap 'rc=$?; [ "$rc" = 0 ] || [ "$STARTED" = 0 ] || down; exit "$rc"' EXIT; up ;;
    down) down ;;
    smoke) trap on_exit EXIT; trap 'exit 143' TERM; trap 'exit 130' INT; smoke ;;
    faults) trap on_exit EXIT; trap 'exit 143' TERM; trap 'exit 130' INT; faults ;;
    *) echo "usage: $0 install|up|down|smoke|faults" >&2; exit 2 ;;
esac
