#!/usr/bin/env bash
# Issue 11's long runs, prepared to be started by hand (never by CI or the tests):
#
#   (a) "beta": the beta curves on Cluttered MNIST. scripts/sweep_beta.py with
#       configs/allcnn96_cluttered_cpu.yaml over beta in $BETAS (default 0 0.01 0.1 0.5 1 2)
#       and seeds $SEEDS (default 0 1) on $CL_DATA (64x64, 9 distractors, 20k / 2k / 10k, made
#       from $MNIST with the command of docs/CLASSIFIER.md when missing) -> $OUT/beta:
#       sweep.csv (test_error; kl_nats_i, kl_lift_i, kl_auc_i per pool) and
#       figures/metrics_vs_beta.png, rate_distortion.png.
#   (b) "occluded": the nuisance experiment. scripts/make_occluded.py makes
#       $OUT/data/occluded.npz from $FASHION (task) and $MNIST (occluders, 14x14, pasted);
#       configs/allcnn32_fashion.yaml (All-CNN-32, one grey channel, width 0.25, 10 epochs of
#       20k) is trained with information dropout for beta in $OCC_BETAS (default
#       0 0.1 0.5 1 2 5), and with binary and with no dropout (each a scripts/sweep_beta.py
#       directory under $OUT/occluded); every run is probed twice (scripts/probe_nuisance.py:
#       nuisance_error per pool in its metrics.json from f(x), and with --noise
#       nuisance_error_noisy from z = f(x) eps); the sweeps are rerun (every point skipped) to
#       collect nuisance_error[_noisy]_i into their sweep.csv and figures; the table of
#       task error and probe error is $OUT/occluded/table.md, the figure
#       $OUT/occluded/nuisance_vs_beta.png (benchmarks/plot_occluded.py).
#   (c) "width": ID vs dropout across network sizes. Plain Fashion-MNIST ($OUT/data/fashion.npz:
#       the same generator with --occluder-size 0), configs/allcnn32_fashion.yaml with
#       --dropout information / binary / none at --width in $WIDTHS (default 0.1 0.25 0.5 1.0),
#       $WIDTH_EPOCHS epochs (default 10) of $WIDTH_TRAIN images (default 20000), the learning
#       rate x0.1 at the epochs $WIDTH_LR_DROPS (default 7 9), one run each
#       under $OUT/width; the test-error table is $OUT/width/table.md.
#
#   MNIST=/path/to/mnist.npz FASHION=/usr/share/datasets/fashion-mnist \
#       bash benchmarks/issue11_runs.sh [beta|occluded|width|all]      (default all)
#   # in the background:
#   mkdir -p runs/issue11 && MNIST=... FASHION=... nohup bash benchmarks/issue11_runs.sh \
#       > runs/issue11/driver.log 2>&1 &
#
# FASHION: an .npz (x_train, y_train, x_test, y_test) or a folder of the four IDX files, gzip'd
# or not (default /usr/share/datasets/fashion-mnist: apt-get install dataset-fashion-mnist).
# Every step logs to $OUT/logs/<step>.log (default OUT=runs/issue11) and skips what is done: a
# data file that exists is kept, the sweeps skip their finished points (an interrupted point
# resumes from its last epoch), a width run that completed is not repeated (an interrupted one
# resumes), a probe leaves $OUT/logs/probe_<run>.done. Rerun the same command after an
# interruption.
#
# Cost, measured on 2 CPU cores with TF (docs/CLASSIFIER.md): (a) 312-718 s of training per run of
# the CPU config (12 runs with SEEDS="0 1"); (b) 8 runs in 59 minutes, probes 13-25 s each;
# (c) with WIDTH_TRAIN=5000 WIDTH_EPOCHS=6 WIDTH_LR_DROPS="4 5", 12 runs in 60 minutes, the
# width-1.0 runs 8.5-13 minutes each (the defaults, 10 epochs of 20k, cost about 6.7x that).
#
# Knobs (env): MNIST (required), FASHION (for occluded / width), OUT, KERAS_BACKEND
# (tensorflow, the backend of the documented CPU numbers), BETAS, SEEDS, CL_DATA, CL_TRAIN,
# CL_VALID, CL_TEST, OCC_BETAS, OCC_TRAIN, OCC_VALID, OCC_TEST, PROBE_FLAGS (e.g.
# "--n-train 10000 --grid 4", the defaults), WIDTHS, WIDTH_EPOCHS, WIDTH_TRAIN, WIDTH_LR_DROPS,
# EXTRA_FLAGS (added to every training command before its own flags). The tiny check:
#   OUT=/tmp/issue11_check CL_TRAIN=256 CL_VALID=64 CL_TEST=128 OCC_TRAIN=256 OCC_VALID=64 \
#   OCC_TEST=128 WIDTH_TRAIN=256 WIDTH_EPOCHS=1 BETAS="0 1" SEEDS=0 OCC_BETAS="0 1" \
#   WIDTHS="0.1 0.25" PROBE_FLAGS="--n-train 256" \
#   EXTRA_FLAGS="--epochs 1 --train-size 256 --batch-size 32" MNIST=... FASHION=... \
#   bash benchmarks/issue11_runs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MNIST:?set MNIST=/path/to/mnist.npz (x_train, y_train, x_test, y_test)}"
[[ -f "$MNIST" ]] || { echo "error: MNIST=$MNIST is not a file" >&2; exit 2; }
export KERAS_BACKEND=${KERAS_BACKEND:-tensorflow}
FASHION=${FASHION:-/usr/share/datasets/fashion-mnist}
OUT=${OUT:-runs/issue11}
BETAS=${BETAS:-0 0.01 0.1 0.5 1 2}
SEEDS=${SEEDS:-0 1}
CL_DATA=${CL_DATA:-$OUT/data/cl64.npz}
CL_TRAIN=${CL_TRAIN:-20000}
CL_VALID=${CL_VALID:-2000}
CL_TEST=${CL_TEST:-10000}
OCC_BETAS=${OCC_BETAS:-0 0.1 0.5 1 2 5}
OCC_TRAIN=${OCC_TRAIN:-50000}
OCC_VALID=${OCC_VALID:-10000}
OCC_TEST=${OCC_TEST:-10000}
PROBE_FLAGS=${PROBE_FLAGS:-}
WIDTHS=${WIDTHS:-0.1 0.25 0.5 1.0}
WIDTH_EPOCHS=${WIDTH_EPOCHS:-10}
WIDTH_TRAIN=${WIDTH_TRAIN:-20000}
WIDTH_LR_DROPS=${WIDTH_LR_DROPS:-7 9}
EXTRA_FLAGS=${EXTRA_FLAGS:-}
WHAT=${1:-all}
LOGS=$OUT/logs
FASHION_CFG=configs/allcnn32_fashion.yaml
mkdir -p "$LOGS" "$OUT/data"

say() { echo "[$(date '+%F %T')] $*"; }

need_fashion() {
  [[ -e "$FASHION" ]] || { echo "error: FASHION=$FASHION not found (an .npz or an IDX folder;" \
    "apt-get install dataset-fashion-mnist)" >&2; exit 2; }
}

# new | resume | done: the state of a run directory for a wanted number of epochs.
run_state() { python3 benchmarks/run_state.py "$1" "$2"; }

make_data() {  # name file script [flags...]
  local name=$1 file=$2 script=$3
  shift 3
  if [[ -f $file ]]; then
    say "data $name: $file exists, kept"
  else
    say "data $name: making $file (log $LOGS/data_$name.log)"
    python3 "scripts/$script" --out "$file" "$@" >> "$LOGS/data_$name.log" 2>&1
    tail -n 1 "$LOGS/data_$name.log"
  fi
}

# ---------------------------------------------------------------- (a) beta curves
if [[ $WHAT == all || $WHAT == beta ]]; then
  make_data cl64 "$CL_DATA" make_cluttered_mnist.py --data "$MNIST" --train "$CL_TRAIN" \
    --valid "$CL_VALID" --test "$CL_TEST" --canvas 64 --distractors 9
  say "beta: betas $BETAS, seeds $SEEDS -> $OUT/beta (log $LOGS/beta.log)"
  # shellcheck disable=SC2086
  python3 scripts/sweep_beta.py --config configs/allcnn96_cluttered_cpu.yaml --betas $BETAS \
    --seeds $SEEDS --out "$OUT/beta" --data "$CL_DATA" $EXTRA_FLAGS >> "$LOGS/beta.log" 2>&1
  tail -n 3 "$LOGS/beta.log"
fi

# ---------------------------------------------------------------- (b) occluded nuisance
occluded_sweeps() {  # the three sweeps of (b); every finished point is skipped
  local data=$OUT/data/occluded.npz
  # shellcheck disable=SC2086
  python3 scripts/sweep_beta.py --config "$FASHION_CFG" --betas $OCC_BETAS --out \
    "$OUT/occluded/information" --data "$data" $EXTRA_FLAGS >> "$LOGS/occluded.log" 2>&1
  for dropout in binary none; do
    # shellcheck disable=SC2086
    python3 scripts/sweep_beta.py --config "$FASHION_CFG" --betas 0 --out \
      "$OUT/occluded/$dropout" --data "$data" $EXTRA_FLAGS --dropout "$dropout" \
      >> "$LOGS/occluded.log" 2>&1
  done
}

if [[ $WHAT == all || $WHAT == occluded ]]; then
  need_fashion
  make_data occluded "$OUT/data/occluded.npz" make_occluded.py --task-data "$FASHION" \
    --occluder-data "$MNIST" --train "$OCC_TRAIN" --valid "$OCC_VALID" --test "$OCC_TEST"
  say "occluded: information (betas $OCC_BETAS), binary, none -> $OUT/occluded" \
    "(log $LOGS/occluded.log)"
  occluded_sweeps
  for model in $(find "$OUT/occluded" -name model.keras | sort); do
    run=$(dirname "$model")
    for noise in "" --noise; do  # f(x), then one draw of z = f(x) eps
      tag=$(echo "${run#"$OUT"/occluded/}" | tr '/' '_')${noise:+_noisy}
      done_file=$LOGS/probe_$tag.done
      if [[ -f $done_file && $done_file -nt $model ]]; then
        say "probe $tag: done, skipped"
      else
        say "probe $tag (log $LOGS/probe.log)"
        # shellcheck disable=SC2086
        python3 scripts/probe_nuisance.py "$run" --data "$OUT/data/occluded.npz" $PROBE_FLAGS \
          $noise >> "$LOGS/probe.log" 2>&1
        tail -n 3 "$LOGS/probe.log" | grep nuisance_error || true
        touch "$done_file"
      fi
    done
  done
  occluded_sweeps  # collects nuisance_error_i into each sweep.csv and its figures
  python3 - "$OUT/occluded" <<'PY' | tee "$OUT/occluded/table.md"
import csv, json, sys
from pathlib import Path
root = Path(sys.argv[1])
rows = []
for name in ("information", "binary", "none"):
    path = root / name / "sweep.csv"
    rows += list(csv.DictReader(path.open())) if path.is_file() else []
pools = sorted({k for r in rows for k in r if k.startswith("nuisance_error_")})
num = lambda v: f"{float(v):.2f}" if v not in ("", None) else ""  # noqa: E731
head = lambda k: ("noisy z" if "noisy" in k else "f(x)") + f", pool {k.rsplit('_', 1)[1]}"  # noqa: E731
print("| dropout | beta | seed | test error (%) | KL, all pools (nats) | " + " | ".join(
    f"nuisance error, {head(k)} (%)" for k in pools) + " | chance (%) |")
print("|---" * (6 + len(pools)) + "|")
for r in rows:
    metrics = Path(r["run_dir"]) / "metrics.json"
    chance = json.loads(metrics.read_text()) if metrics.is_file() else {}
    chance = chance.get("nuisance_chance_error", "")
    cells = [r["dropout"], r["beta"] if r["dropout"] == "information" else "-", r["seed"],
             num(r.get("test_error")), num(r.get("rate"))] + [num(r.get(k)) for k in pools] + [
             num(chance)]
    print("| " + " | ".join(cells) + " |")
PY
  python3 benchmarks/plot_occluded.py "$OUT/occluded"
fi

# ---------------------------------------------------------------- (c) width table
if [[ $WHAT == all || $WHAT == width ]]; then
  need_fashion
  make_data fashion "$OUT/data/fashion.npz" make_occluded.py --task-data "$FASHION" \
    --occluder-data "$MNIST" --occluder-size 0 --train "$OCC_TRAIN" --valid "$OCC_VALID" \
    --test "$OCC_TEST"
  for width in $WIDTHS; do  # a whole row (three dropouts) before the next, wider one
    for dropout in information binary none; do
      run=$OUT/width/${dropout}_w$width log=$LOGS/width_${dropout}_w$width.log
      state=$(run_state "$run" "$WIDTH_EPOCHS")
      if [[ $state == new ]]; then
        say "width: $dropout, width $width, $WIDTH_EPOCHS epochs -> $run (log $log)"
        # shellcheck disable=SC2086
        python3 scripts/train_classifier.py --config "$FASHION_CFG" --data "$OUT/data/fashion.npz" \
          $EXTRA_FLAGS --dropout "$dropout" --width "$width" --epochs "$WIDTH_EPOCHS" \
          --lr-drops $WIDTH_LR_DROPS \
          --train-size "$WIDTH_TRAIN" --out "$run" >> "$log" 2>&1
        tail -n 2 "$log" | head -n 1
      elif [[ $state == resume ]]; then
        say "width: $dropout, width $width: resuming to $WIDTH_EPOCHS epochs (log $log)"
        python3 scripts/train_classifier.py --out "$run" --resume --epochs "$WIDTH_EPOCHS" \
          >> "$log" 2>&1
      else
        say "width: $dropout, width $width: trained, skipped"
      fi
    done
  done
  python3 - "$OUT/width" "$WIDTHS" <<'PY' | tee "$OUT/width/table.md"
import json, sys
from pathlib import Path
root, widths = Path(sys.argv[1]), sys.argv[2].split()
dropouts = ("information", "binary", "none")
print("| width | " + " | ".join(f"{d}: test error (%)" for d in dropouts) + " |")
print("|---" * (1 + len(dropouts)) + "|")
for w in widths:
    cells = []
    for d in dropouts:
        m = root / f"{d}_w{w}" / "metrics.json"
        e = json.loads(m.read_text()).get("test_error") if m.is_file() else None
        cells.append("" if e is None else f"{e:.2f}")
    print(f"| {w} | " + " | ".join(cells) + " |")
PY
fi
say "done: $OUT"
