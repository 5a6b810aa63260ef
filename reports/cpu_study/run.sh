#!/usr/bin/env bash
# The CPU study, end to end (reports/cpu_study/README.md, protocol.md): its three sweeps, 2 runs at a time with 1 torch thread each
# (launcher=local_parallel), then the compact stored results (data/) and every published file.
#   bash reports/cpu_study/run.sh                          # from anywhere; resumable: re-run it after a kill
#   STUDY_SEEDS="0 1 2" bash reports/cpu_study/run.sh      # only these seeds
#   STUDY_SKIP_RUNS=1 bash reports/cpu_study/run.sh        # only collect + publish what has run
#   bash reports/cpu_study/run.sh publish [--exploratory]  # only the tables and figures, from the committed data/
#                                                          # (a fresh clone suffices: no runs/ needed)
# Runs land in $STUDY_RUNS (default runs/cpu_study). Each phase's wall and CPU seconds (user + system of the sweep
# and its workers, GNU time when installed) are appended to data/wall.tsv: sweep, filter, seeds, start, end (epoch
# s), wall s, cpu s. A failed sweep stops the script with its exit status (data/ and the published files are then
# unchanged; re-running resumes). `collect` refuses to replace data/ by a collection that lacks a stored finished run.
# STUDY_DATA and STUDY_OUT (default reports/cpu_study/data and reports/cpu_study) and PYTHON are for tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${STUDY_RUNS:-runs/cpu_study}
DATA=${STUDY_DATA:-reports/cpu_study/data}
OUT=${STUDY_OUT:-reports/cpu_study}
PROTOCOL=reports/cpu_study/protocol.md
PY=${PYTHON:-python}
export HF_HUB_OFFLINE=1 WANDB_MODE=offline WANDB_SILENT=true TOKENIZERS_PARALLELISM=false
if [ "${1:-}" = publish ]; then
  shift
  exec "$PY" -m sspo_exp.report.cpu_study publish "$DATA" "$OUT" --protocol "$PROTOCOL" "$@"
fi
mkdir -p "$DATA"
# Phases, most important first (protocol.md), so a study cut short has whole regimes: (1) the primary comparisons,
# seeds 0-4 then 5-9 (each batch complete before the next); (2) SSPO's temperature regimes (swapped order, rescaled);
# (3) the learning-rate regime. Finished runs are skipped (same run ids), so re-running this script after a kill
# resumes the study.
SEEDS=${STUDY_SEEDS:-0 1 2 3 4 5 6 7 8 9}
PHASES=("cpu_study_claims||0 1 2 3 4" "cpu_study_claims||5 6 7 8 9")
[ -n "${STUDY_SEEDS:-}" ] && PHASES=("cpu_study_claims||$SEEDS")
PHASES+=("cpu_study_tau||$SEEDS" "cpu_study_lr||$SEEDS")
TIMER=()
[ -x /usr/bin/time ] && TIMER=(/usr/bin/time -f '%e %U %S' -o "$DATA/.time")
for phase in "${PHASES[@]}"; do
  [ -n "${STUDY_SKIP_RUNS:-}" ] && break
  IFS='|' read -r sweep only seeds <<< "$phase"
  start=$(date +%s)
  status=0
  # shellcheck disable=SC2086
  "${TIMER[@]}" sspo-exp sweep "sweeps/$sweep.yaml" launcher=local_parallel "output_root=$RUNS" $only \
    --seeds $seeds || status=$?
  cpu=""
  if [ -s "$DATA/.time" ]; then
    read -r _ user sys < <(tail -n 1 "$DATA/.time")
    cpu=$("$PY" -c "print(round($user + $sys, 1))")
  fi
  end=$(date +%s)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sweep" "$only" "$seeds" "$start" "$end" "$((end - start))" "$cpu" \
    >> "$DATA/wall.tsv"
  rm -f "$DATA/.time"
  if [ "$status" -ne 0 ]; then
    echo "run.sh: phase '$sweep $only --seeds $seeds' failed (exit $status); stopping before collect and publish" \
      "(data/ and the published files are unchanged; re-run to resume)" >&2
    exit "$status"
  fi
done
"$PY" -m sspo_exp.report.cpu_study collect "$RUNS" "$DATA"
"$PY" -m sspo_exp.report.cpu_study publish "$DATA" "$OUT" --protocol "$PROTOCOL"
