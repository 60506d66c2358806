#!/usr/bin/env bash
# Train one DeepFakeClassifier per seed on the crops preprocess_data.sh wrote into DATA_ROOT.
#   ./train.sh DATA_ROOT NUM_GPUS [CONFIG] [SEEDS...]
# CONFIG defaults to configs/b7.json, SEEDS to 111 555 777 888 999 (the winner's five B7 models).
# NUM_GPUS=0 trains on the CPU in one process; N >= 1 runs torchrun with N processes (DDP).
# Environment:
#   OUTPUT_DIR    checkpoint folder (default weights/): <name>_best, <name>_last, <name>_<epoch>
#   LOG_DIR       logs (default logs/): <config>_<seed>.log and TensorBoard runs in LOG_DIR/<name>/
#   FOLD          validation fold (default 0)
#   TORCHRUN_ARGS extra torchrun flags, e.g. for two machines (run on each, NODE_RANK 0 and 1):
#                 TORCHRUN_ARGS="--nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint host0:29400 --rdzv_id dfdc"
#   TRAIN_ARGS    extra training options, e.g. "--set optimizer.lr=0.005 --workers 4"
set -euo pipefail

usage() {
    echo "usage: $0 DATA_ROOT NUM_GPUS [CONFIG] [SEEDS...]" >&2
    exit 2
}

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
[[ -f $config ]] || { echo "config $config does not exist; see configs/" >&2; exit 2; }

repo_root=$here
source "$here/scripts/python_env.sh"

output_dir=${OUTPUT_DIR:-weights}
log_dir=${LOG_DIR:-logs}
fold=${FOLD:-0}
mkdir -p "$output_dir" "$log_dir"
config_name=$(basename "$config" .json)
read -r -a torchrun_args <<< "${TORCHRUN_ARGS:-}"
read -r -a train_args <<< "${TRAIN_ARGS:-}"

for seed in "${seeds[@]}"; do
    log_file="$log_dir/${config_name}_${seed}.log"
    args=(--config "$config" --data-dir "$data_root" --seed "$seed" --fold "$fold"
          --output-dir "$output_dir" --log-dir "$log_dir" "${train_args[@]}")
    echo "seed $seed: log $log_file"
    if [[ $num_gpus -eq 0 ]]; then
        "$python" -m training.pipelines.train_classifier --device cpu "${args[@]}" 2>&1 | tee "$log_file"
    else
        if [[ ${#torchrun_args[@]} -eq 0 ]]; then
            torchrun_args=(--standalone)
        fi
        "$python" -m torch.distributed.run --nproc_per_node "$num_gpus" "${torchrun_args[@]}" \
            -m training.pipelines.train_classifier "${args[@]}" 2>&1 | tee "$log_file"
    fi
done
echo "weights: $(cd "$output_dir" && pwd) (<name>_best per seed; predict with ./predict_submission.sh TEST_DIR OUT.csv)"
