#!/usr/bin/env bash
# Predict every video in TEST_DIR (.mp4 .mov .mkv .avi .webm .m4v, any case) into OUT.csv (filename,label).
#   ./predict_submission.sh TEST_DIR OUT.csv [CKPT ...] [-- extra predict_folder.py options]
# Without CKPT: the checkpoints train.sh wrote (per run *_best, else *_last) in $WEIGHTS_DIR itself (not
# its subfolders), else in weights/ of this repository (models.weights.default_weights_dir, the
# rule train.sh follows).
# When TEST_DIR holds a metadata.json the score is printed too.
# Examples of extra options: -- --report output/report --frames-per-video 16 --tta
set -euo pipefail

usage() {
    echo "usage: $0 TEST_DIR OUT.csv [CKPT ...] [-- predict_folder.py options]" >&2
    exit 2
}

[[ $# -ge 2 ]] || usage
test_dir=$1
output=$2
shift 2

checkpoints=()
while [[ $# -gt 0 && $1 != "--" ]]; do
    checkpoints+=("$1")
    shift
done
[[ $# -gt 0 && $1 == "--" ]] && shift

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$here
source "$here/scripts/python_env.sh"

model_args=()
if [[ ${#checkpoints[@]} -gt 0 ]]; then
    model_args=(--models "${checkpoints[@]}")
fi

exec "$python" "$here/predict_folder.py" --test-dir "$test_dir" --output "$output" \
    "${model_args[@]+"${model_args[@]}"}" "$@"
