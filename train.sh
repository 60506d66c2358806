#!/usr/bin/env bash
# Train one DeepFakeClassifier per seed on the crops preprocess_data.sh wrote into DATA_ROOT.
#   ./train.sh [--resume] [--overwrite] DATA_ROOT NUM_GPUS [CONFIG] [SEEDS...]
# CONFIG defaults to configs/b7.json, SEEDS to 111 555 777 888 999 (the winner's five B7 models).
# NUM_GPUS=0 trains on the CPU in one process; N >= 1 runs torchrun with N processes (DDP) and needs
# N visible CUDA GPUs.
#   --resume     continue each seed's run from its <name>_last in the weights folder (a seed without
#                one starts); a seed whose run is complete stops at once
#   --overwrite  start again over a run of the same name (its files are deleted); without it a new run
#                into a folder that holds one is refused
# A second trainer of a run that is training into the same folder is refused (exit 2, naming it).
# SIGTERM or Ctrl-C stops the trainer too (exit 143 / 130); --resume continues after the last epoch.
# Environment:
#   WEIGHTS_DIR   checkpoint folder, the one predict_submission.sh reads (default: weights/ in this
#                 repository, wherever this is run from); OUTPUT_DIR is accepted as its older name
#   LOG_DIR       logs (default logs/): <config>_<seed>.log (appended to) and TensorBoard runs in LOG_DIR/<name>/
#   FOLD          validation fold (default 0)
#   TEST_FOLD     a fold left out of training and validation, to test on afterwards (default: none)
#                 A dataset's official split (FF++, Celeb-DF's test list) is folds 0 = val, 1 = test,
#                 2 = train: FOLD=0 TEST_FOLD=1 follows it (docs/datasets.md)
#   TORCHRUN_ARGS extra torchrun flags, e.g. for two machines (run on each, NODE_RANK 0 and 1):
#                 TORCHRUN_ARGS="--nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint host0:29400 --rdzv_id dfdc"
#   TRAIN_ARGS    extra training options, e.g. "--set optimizer.lr=0.005 --workers 4"
#   TRAIN_DEVICE  cpu: run the NUM_GPUS torchrun processes on the CPU (DDP over gloo, for testing)
# The checkpoint folder is not chosen here: the trainer's default (models.weights.
# default_weights_dir, from WEIGHTS_DIR) is the rule predict_submission.sh follows too.
set -euo pipefail

usage() {
    echo "usage: $0 [--resume] [--overwrite] DATA_ROOT NUM_GPUS [CONFIG] [SEEDS...]" >&2
    exit 2
}

invocation="$*"
resume_args=()
positional=()
for arg in "$@"; do
    case $arg in
        --resume) resume_args+=(--resume last) ;;
        --overwrite) resume_args+=(--overwrite) ;;
        -h|--help) usage ;;
        -*) echo "unknown option $arg; options: --resume, --overwrite" >&2; usage ;;
        *) positional+=("$arg") ;;
    esac
done
set -- "${positional[@]+"${positional[@]}"}"

[[ $# -ge 2 ]] || usage
data_root=$1
num_gpus=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
config=${3:-$here/configs/b7.json}
shift $(( $# >= 3 ? 3 : 2 ))
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(111 555 777 888 999)
[[ $num_gpus =~ ^[0-9]+$ ]] || { echo "NUM_GPUS must be a number (0 = CPU), got '$num_gpus'" >&2; exit 2; }
[[ -d $data_root ]] || { echo "DATA_ROOT $data_root is not a folder" >&2; exit 2; }
[[ -f $data_root/folds.csv ]] || { echo "$data_root/folds.csv is missing; run ./preprocess_data.sh $data_root first" >&2; exit 2; }
[[ ! -d $config ]] || { echo "config $config is a folder; pass a JSON file such as configs/b7.json" >&2; exit 2; }
[[ -f $config ]] || { echo "config $config does not exist; see configs/" >&2; exit 2; }

repo_root=$here
source "$here/scripts/python_env.sh"
[[ -z ${OUTPUT_DIR:-} || -n ${WEIGHTS_DIR:-} ]] || export WEIGHTS_DIR=$OUTPUT_DIR  # its older name

device=cuda
if [[ $num_gpus -eq 0 || ${TRAIN_DEVICE:-} == cpu ]]; then
    device=cpu
elif [[ -n ${TRAIN_DEVICE:-} ]]; then
    echo "TRAIN_DEVICE must be cpu or unset, got '$TRAIN_DEVICE'" >&2
    exit 2
else
    "$python" -m core.devices --need-gpus "$num_gpus"  # exits 2 with the reason
fi

log_dir=${LOG_DIR:-logs}
fold=${FOLD:-0}
test_fold_args=()
[[ -z ${TEST_FOLD:-} ]] || test_fold_args=(--test-fold "$TEST_FOLD")
mkdir -p "$log_dir"
config_name=$(basename "$config" .json)
read -r -a torchrun_args <<< "${TORCHRUN_ARGS:-}"
read -r -a train_args <<< "${TRAIN_ARGS:-}"
[[ ${#torchrun_args[@]} -gt 0 ]] || torchrun_args=(--standalone)

train_seed() {  # runs as the first process of a pipeline: exec makes that process the trainer itself
    if [[ $num_gpus -eq 0 ]]; then
        exec "$python" -m training.pipelines.train_classifier "$@"
    else
        exec "$python" -m torch.distributed.run --nproc_per_node "$num_gpus" "${torchrun_args[@]}" \
            -m training.pipelines.train_classifier "$@"
    fi
}

# SIGTERM or Ctrl-C stops the trainer too, and train.sh ends once it has. The trainer runs in the
# background (a trap runs only while bash waits in `wait`, not while a foreground pipeline runs) and
# gets SIGTERM for either signal: background commands ignore SIGINT. tee -i keeps logging its last words.
stop_trainer() {
    trap - TERM INT
    local trainer
    trainer=$(jobs -p %+ 2>/dev/null) || true
    [[ -z $trainer ]] || kill -TERM "$trainer" 2>/dev/null || true
    wait || true
    echo "train.sh: stopped by SIG$1; ./train.sh --resume with the same arguments continues after the last finished epoch" >&2
    exit $((128 + $(kill -l "$1")))
}
trap 'stop_trainer TERM' TERM
trap 'stop_trainer INT' INT

for seed in "${seeds[@]}"; do
    log_file="$log_dir/${config_name}_${seed}.log"
    args=(--config "$config" --data-dir "$data_root" --seed "$seed" --fold "$fold" --device "$device"
          --log-dir "$log_dir" "${test_fold_args[@]+"${test_fold_args[@]}"}"
          "${resume_args[@]+"${resume_args[@]}"}" "${train_args[@]+"${train_args[@]}"}")
    echo "seed $seed: log $log_file"
    echo "== $(date '+%Y-%m-%d %H:%M:%S') train.sh $invocation (seed $seed) ==" >> "$log_file"
    train_seed "${args[@]}" 2>&1 | tee -i -a "$log_file" &
    wait %+  # the pipeline's status (pipefail): a failed seed ends train.sh, as set -e says
done
