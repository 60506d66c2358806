#!/usr/bin/env bash
# The whole pipeline on the generated sample dataset, on the CPU:
# sample data -> ./preprocess_data.sh -> ./train.sh (small CPU config) -> ./predict_submission.sh on the
# held-out sample test videos -> score and report path.
#   scripts/demo.sh [SAMPLE_DIR] [DEMO_DIR]        (defaults: data/sample, output/demo)
# Environment: SEED (default 111), CONFIG (default configs/demo_cpu.json), FRAMES_PER_VIDEO (default 32).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
sample=${1:-data/sample}
demo=${2:-output/demo}
seed=${SEED:-111}
config=${CONFIG:-configs/demo_cpu.json}
repo_root=$repo
source "$repo/scripts/python_env.sh"

start=$(date +%s)
if [[ ! -f $sample/test_videos/metadata.json ]]; then
    echo "== sample dataset -> $sample"
    "$python" -m sample_data.make_sample_dataset "$sample"
fi
echo "== preprocess $sample"
./preprocess_data.sh "$sample"
echo "== train ($config, seed $seed, CPU)"
# --overwrite: a rerun of the demo trains its model again rather than stopping at the existing one
WEIGHTS_DIR="$demo/weights" LOG_DIR="$demo/logs" ./train.sh --overwrite "$sample" 0 "$config" "$seed"
echo "== predict $sample/test_videos"
WEIGHTS_DIR="$demo/weights" ./predict_submission.sh "$sample/test_videos" "$demo/submission.csv" \
    -- --report "$demo/report" --frames-per-video "${FRAMES_PER_VIDEO:-32}"
echo "== done in $(( $(date +%s) - start )) s"
echo "submission: $demo/submission.csv  scores: $demo/submission.metrics.json"
echo "report: $demo/report/index.html"
echo "predict other videos with these weights: WEIGHTS_DIR=$demo/weights ./predict_submission.sh TEST_DIR OUT.csv"
