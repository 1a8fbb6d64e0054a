#!/usr/bin/env bash
# The whole tuned CF leaderboard (issue 17) from scratch, its wall time measured: the MF,
# LightGCN, NGCF and SASRec studies of `cf-tuned` (20 trials each), then their chosen runs, which
# restore each study's winning trial instead of training it again (docs/tuning.md).
#
#   RESULTS=/tmp/lb-results scripts/cf_leaderboard.sh     # a fresh results folder: nothing reused
#
# Two tuner processes, one thread each (the 2-core machine): each study has a single tuner, so its
# seeded TPE draws the same trials every time, except SASRec's, which both tuners share once the
# small studies are done (its first trial alone takes ~40 min on one thread). Prints the seconds
# of each step and the total; the records and studies land in $RESULTS.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS="${RESULTS:?set RESULTS to a fresh results folder}"
PY="${PYTHON:-python}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
start=$(date +%s)
since() { echo "$(( $(date +%s) - start ))"; }
tune() { "$PY" -m bench tune --suite cf-tuned --results-dir "$RESULTS" --methods "$1"; }
( tune mf:bce+tuned && echo "mf study done at $(since) s" \
  && tune ngcf:bce+tuned && echo "ngcf study done at $(since) s" \
  && tune sasrec && echo "sasrec tuner 1 done at $(since) s" ) &
first=$!
( tune lightgcn:bce+tuned && echo "lightgcn study done at $(since) s" \
  && tune sasrec && echo "sasrec tuner 2 done at $(since) s" ) &
second=$!
wait "$first"
wait "$second"
echo "studies done at $(since) s"
"$PY" -m bench run --suite cf-tuned --results-dir "$RESULTS" --no-progress \
  --methods mf:bce+tuned,lightgcn:bce+tuned,ngcf:bce+tuned,sasrec
echo "chosen runs done at $(since) s: the whole leaderboard"
