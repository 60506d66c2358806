"""Train DeepFakeClassifier on the crops in DATA_ROOT/folds.csv.

One process on the CPU or one GPU::

    python -m training.pipelines.train_classifier --config configs/b7.json --data-dir DATA_ROOT --seed 111

Several GPUs (and machines) through torchrun; each process gets ``batch_size`` samples::

    torchrun --nproc_per_node 8 -m training.pipelines.train_classifier --config configs/b7.json ...

Each epoch rank 0 validates and writes ``<name>_<epoch>``, ``<name>_last`` and, when the validation
score improves, ``<name>_best`` (model, optimizer, scheduler, grad scaler, epoch, best score, resolved
config). ``--resume`` continues the same run bit for bit on the CPU: every random choice is derived
from (seed, epoch, sample index).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from preprocessing.layout import DataLayout, atomic_path, write_text_atomic
from training.datasets.classifier_dataset import DeepFakeClassifierDataset, read_folds, split_folds
from training.tools.config import load_config
from training.tools.metrics import video_scores
from training.tools.schedulers import create_optimizer, create_scheduler
from training.transforms.augmentations import normalize_batch, tensor_to_image
from training.zoo.checkpoints import load_state_dict_strict, read_checkpoint, save_checkpoint
from training.zoo.classifiers import DeepFakeClassifier
from training.zoo.pretrained import load_pretrained

log = logging.getLogger("train_classifier")

SELECTION_METRIC = "balanced_log_loss"  # mean of the fake and real log losses, lower is better


@dataclass
class TrainOptions:
    data_dir: str
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    fold: int = 0
    seed: int = 111
    output_dir: str = "weights"
    log_dir: str = "logs"
    prefix: str = ""
    resume: str | None = None
    from_zero: bool = False
    no_hardcore: bool = False
    padding_part: int | None = None
    full_val: bool = False
    workers: int | None = None
    device: str = "auto"
    stop_after: int | None = None  # epochs to run in this call (the schedule still spans all epochs)
    progress: bool = True


@dataclass
class TrainResult:
    name: str
    weights_dir: Path
    log_dir: Path
    step_losses: list[float]
    epochs_run: list[int]
    best_score: float
    metrics: dict[str, Any]
    checkpoints: list[Path]


@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_request: str) -> tuple[DistContext, torch.device]:
    """Read torchrun's environment; NCCL on GPUs, gloo on the CPU."""
    ctx = DistContext(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                      int(os.environ.get("WORLD_SIZE", 1)))
    use_cuda = torch.cuda.is_available() and device_request != "cpu"
    if device_request.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device_request} was asked for but CUDA is not available; use --device cpu")
    if use_cuda:
        torch.cuda.set_device(ctx.local_rank)
        device = torch.device("cuda", ctx.local_rank)
    else:
        device = torch.device("cpu")
    if ctx.distributed and not dist.is_initialized():
        # rank 0 validates while the others wait at a barrier: allow a long validation
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(hours=2))
    return ctx, device


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16 (with a grad scaler); None (fp32) on the CPU."""
    if device.type != "cuda" or mode == "none":
        return None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def balanced_bce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float | None, float | None]:
    """BCE with logits on the fakes and on the reals of the batch separately, then averaged."""
    fake = labels > 0.5
    parts = []
    losses: list[float | None] = []
    for selected in (fake, ~fake):
        if selected.any():
            part = nn.functional.binary_cross_entropy_with_logits(logits[selected], labels[selected])
            parts.append(part)
            losses.append(float(part.detach()))
        else:
            losses.append(None)
    loss = torch.stack(parts).mean()
    return loss, losses[0], losses[1]


def run_name(config: dict, seed: int, prefix: str = "") -> str:
    return f"{prefix}{config['network']}_{config['encoder']}_{seed}"


def _seed_everything(seed: int, epoch: int, rank: int) -> None:
    """Torch's global RNG (dropout, drop-path) from (seed, epoch, rank): no state to carry over."""
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch, rank, 7]).generate_state(1)[0]))


def _worker_init(_worker_id: int) -> None:
    import cv2

    cv2.setNumThreads(0)  # the loader workers already run in parallel


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None,
             channels_last: bool, progress: bool = False) -> dict[str, Any]:
    """Per-video mean of the frame probabilities, then video_scores (log losses, AUC)."""
    from tqdm import tqdm

    model.eval()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    labels: dict[str, float] = {}
    for batch in tqdm(loader, desc="validation", disable=not progress, leave=False):
        images = normalize_batch(batch["image"].to(device, non_blocking=True))
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            probs = torch.sigmoid(model(images).float().squeeze(1)).cpu().numpy()
        for video, prob, label in zip(batch["video"], probs, batch["label"].numpy()):
            sums[video] = sums.get(video, 0.0) + float(prob)
            counts[video] = counts.get(video, 0) + 1
            labels[video] = float(label)
    videos = sorted(sums)
    metrics = video_scores([labels[v] for v in videos], [sums[v] / counts[v] for v in videos])
    model.train()
    return metrics


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def resolve(options: TrainOptions) -> dict:
    """The config of this run: the checkpoint's when resuming without --config, else the file."""
    base = None
    if options.config is None and options.resume and not options.from_zero:
        base = read_checkpoint(options.resume).get("config") or None
    config = load_config(options.config, options.overrides, base=base)
    if options.no_hardcore:
        config["hardcore"] = False
    if options.padding_part is not None:
        config["padding_part"] = options.padding_part
    if options.workers is not None:
        config["workers"] = options.workers
    return config


def train(options: TrainOptions) -> TrainResult:
    ctx, device = init_distributed(options.device)
    try:
        return _train(options, ctx, device)
    finally:
        if ctx.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(options: TrainOptions, ctx: DistContext, device: torch.device) -> TrainResult:
    config = resolve(options)
    seed = int(options.seed)
    name = run_name(config, seed, options.prefix)
    weights_dir = Path(options.output_dir)
    run_log_dir = Path(options.log_dir) / name
    folds_source = str(DataLayout(options.data_dir).folds_csv)
    train_rows, val_rows = split_folds(read_folds(options.data_dir), options.fold, options.full_val, folds_source)

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)
    model = DeepFakeClassifier(config["encoder"], dropout_rate=config["dropout"],
                               drop_path_rate=config["drop_path_rate"])
    init_source = "random initialisation"
    if not options.resume:
        init_source = load_pretrained(model, config["pretrained"], config["encoder"])
    model.to(device)
    if config["channels_last"]:
        model.to(memory_format=torch.channels_last)

    train_set = DeepFakeClassifierDataset(options.data_dir, train_rows, "train", config["size"], seed=seed,
                                          hardcore=config["hardcore"], padding_part=config["padding_part"],
                                          label_smoothing=config["label_smoothing"], augment=config["augment"])
    val_set = DeepFakeClassifierDataset(options.data_dir, val_rows, "val", config["size"], seed=seed)
    sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=seed, drop_last=True)
    workers = int(config["workers"])
    train_loader = DataLoader(train_set, batch_size=config["batch_size"], sampler=sampler, num_workers=workers,
                              drop_last=True, pin_memory=device.type == "cuda", worker_init_fn=_worker_init)
    if len(train_loader) == 0:
        raise ValueError(f"{folds_source}: fold != {options.fold} gives {len(train_set)} training crops per "
                         f"epoch, fewer than batch_size {config['batch_size']} x {ctx.world_size} processes; "
                         f"lower batch_size (--set batch_size=N) or add data")
    steps_per_epoch = min(len(train_loader), int(config["batches_per_epoch"]))
    total_steps = steps_per_epoch * int(config["epochs"])

    optimizer = create_optimizer(model.parameters(), config["optimizer"])
    scheduler = create_scheduler(optimizer, config["schedule"], total_steps)
    dtype = amp_dtype(config["amp"], device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    start_epoch, best_score = 0, math.inf
    if options.resume:
        data = read_checkpoint(options.resume)
        load_state_dict_strict(model, data["state_dict"], str(options.resume))
        init_source = f"weights of {options.resume}"
        if not options.from_zero:
            optimizer.load_state_dict(data["optimizer"])
            scheduler.load_state_dict(data["scheduler"])
            scaler.load_state_dict(data["scaler"])
            start_epoch = int(data["epoch"]) + 1
            best_score = float(data.get("best_score", math.inf))
            init_source = f"resumed from {options.resume} after epoch {data['epoch']}"

    if ctx.distributed:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = DistributedDataParallel(model, device_ids=[device.index], output_device=device.index)
        else:
            model = DistributedDataParallel(model)
    bare_model = model.module if ctx.distributed else model

    val_loader = DataLoader(val_set, batch_size=config["batch_size"] * 2, shuffle=False, num_workers=workers,
                            pin_memory=device.type == "cuda", worker_init_fn=_worker_init)
    run_info = {"data_dir": str(options.data_dir), "fold": options.fold, "seed": seed, "name": name,
                "world_size": ctx.world_size, "device": str(device), "amp_dtype": str(dtype),
                "init": init_source, "resume": options.resume, "from_zero": options.from_zero,
                "full_val": options.full_val, "steps_per_epoch": steps_per_epoch}
    writer = None
    if ctx.is_main:
        weights_dir.mkdir(parents=True, exist_ok=True)
        run_log_dir.mkdir(parents=True, exist_ok=True)
        resolved = json.dumps({"config": config, "run": run_info}, indent=2, sort_keys=True)
        write_text_atomic(weights_dir / f"{name}_args.json", resolved)
        write_text_atomic(run_log_dir / "args.json", resolved)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_log_dir))
        log.info("%s: %s, %d train crops/epoch, %d val crops, %d steps/epoch x %d epochs, %s, amp %s",
                 name, init_source, len(train_set), len(val_set), steps_per_epoch, config["epochs"],
                 device, dtype)

    from tqdm import tqdm

    step_losses: list[float] = []
    epochs_run: list[int] = []
    checkpoints: list[Path] = []
    metrics: dict[str, Any] = {}
    end_epoch = int(config["epochs"])
    if options.stop_after is not None:
        end_epoch = min(end_epoch, start_epoch + int(options.stop_after))
    model.train()
    for epoch in range(start_epoch, end_epoch):
        _seed_everything(seed, epoch, ctx.rank)
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        global_step = epoch * steps_per_epoch
        running = 0.0
        bar = tqdm(total=steps_per_epoch, desc=f"{name} epoch {epoch}", disable=not (options.progress and ctx.is_main),
                   dynamic_ncols=True)
        for step, batch in enumerate(train_loader):
            if step >= steps_per_epoch:
                break
            images = normalize_batch(batch["image"].to(device, non_blocking=True))
            labels = batch["label"].to(device, non_blocking=True)
            if config["channels_last"]:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = model(images)
            loss, fake_loss, real_loss = balanced_bce(logits.float().squeeze(1), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config["grad_clip"]:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), float(config["grad_clip"]))
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            loss_value = float(loss.detach())
            step_losses.append(loss_value)
            running += loss_value
            if ctx.is_main:
                writer.add_scalar("train/loss", loss_value, global_step + step)
                writer.add_scalar("train/lr", lr, global_step + step)
                if fake_loss is not None:
                    writer.add_scalar("train/fake_loss", fake_loss, global_step + step)
                if real_loss is not None:
                    writer.add_scalar("train/real_loss", real_loss, global_step + step)
                if step == 0 and config["tensorboard_images"]:
                    shown = [tensor_to_image(t) for t in batch["image"][: config["tensorboard_images"]]]
                    writer.add_images("train/images", np.stack(shown), global_step, dataformats="NHWC")
            bar.set_postfix(loss=f"{running / (step + 1):.4f}", lr=f"{lr:.2e}")
            bar.update()
        bar.close()
        epochs_run.append(epoch)

        if ctx.is_main:
            improved = False
            if (epoch + 1) % int(config["val_every"]) == 0 or epoch == int(config["epochs"]) - 1:
                metrics = evaluate(bare_model, val_loader, device, dtype, config["channels_last"], options.progress)
                for key, value in metrics.items():
                    writer.add_scalar(f"val/{key}", value, epoch)
                score = metrics[SELECTION_METRIC]
                improved = bool(np.isfinite(score) and score < best_score)
                best_score = score if improved else best_score
                log.info("%s epoch %d: val %s", name, epoch,
                         ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
            path = weights_dir / f"{name}_{epoch}"
            save_checkpoint(path, bare_model, config, optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), scaler=scaler.state_dict(), epoch=epoch,
                            best_score=best_score, metrics=metrics, run=run_info)
            _copy_atomic(path, weights_dir / f"{name}_last")
            checkpoints += [path, weights_dir / f"{name}_last"]
            if improved:
                _copy_atomic(path, weights_dir / f"{name}_best")
                checkpoints.append(weights_dir / f"{name}_best")
            writer.flush()
        if ctx.distributed:
            dist.barrier()
    if writer is not None:
        writer.close()
    return TrainResult(name, weights_dir, run_log_dir, step_losses, epochs_run, best_score, metrics, checkpoints)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", required=True, help="DATA_ROOT with folds.csv and crops/")
    data.add_argument("--fold", type=int, default=0, help="validation fold; the others are trained on")
    data.add_argument("--full-val", action="store_true", help="validate on every frame, not every 20th")
    data.add_argument("--no-hardcore", action="store_true", help="no landmark/hull/bit-mask cutouts")
    data.add_argument("--padding-part", type=int, default=None,
                      help="keep 1/N of the face size as context on each side (3 = the whole crop)")
    data.add_argument("--workers", type=int, default=None, help="loader processes per GPU (config 'workers')")
    run = parser.add_argument_group("run")
    run.add_argument("--config", default=None, help="JSON config (configs/b7.json, ...)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set optimizer.lr=0.001 (repeatable)")
    run.add_argument("--seed", type=int, default=111)
    run.add_argument("--prefix", default="", help="prepended to the run name")
    run.add_argument("--output-dir", default=os.environ.get("OUTPUT_DIR", "weights"), help="checkpoint folder")
    run.add_argument("--log-dir", default=os.environ.get("LOG_DIR", "logs"),
                     help="TensorBoard logs go to LOG_DIR/<name>/")
    run.add_argument("--resume", default=None, help="checkpoint to continue (same schedule, same data order)")
    run.add_argument("--from-zero", action="store_true", help="with --resume: reuse the weights only")
    run.add_argument("--stop-after", type=int, default=None,
                     help="run at most this many epochs now (the schedule still spans all epochs)")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = TrainOptions(**{k: v for k, v in vars(args).items() if k in TrainOptions.__dataclass_fields__})
    try:
        result = train(options)
    except Exception as exc:
        from training.datasets.classifier_dataset import FoldsError
        from training.tools.config import ConfigError
        from training.zoo.checkpoints import CheckpointError
        from training.zoo.pretrained import PretrainedError

        if isinstance(exc, (FoldsError, ConfigError, CheckpointError, PretrainedError, ValueError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    if rank == 0:
        summary = {"name": result.name, "best_score": result.best_score, "epochs_run": result.epochs_run,
                   "metrics": result.metrics}
        print(json.dumps(summary, default=float))
        best = result.weights_dir / f"{result.name}_best"
        print(f"weights: {result.weights_dir.resolve()}/{result.name}_{{best,last,<epoch>}}"
              f"{'' if best.exists() else ' (no _best yet)'}; TensorBoard: tensorboard --logdir {result.log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
