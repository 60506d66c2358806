"""Train an image classifier (a model family of ``models.registry``, by default the DFDC recipe's
DeepFakeClassifier) on the crops in DATA_ROOT/folds.csv.

One process on the CPU or one GPU::

    python -m training.pipelines.train_classifier --config configs/b7.json --data-dir DATA_ROOT --seed 111

Several GPUs (and machines) through torchrun; each process gets ``batch_size`` samples::

    torchrun --nproc_per_node 8 -m training.pipelines.train_classifier --config configs/b7.json ...

Each epoch rank 0 validates and writes ``<name>_<epoch>``, ``<name>_last`` and, when the validation
score improves, ``<name>_best`` (model, optimizer, scheduler, grad scaler, epoch, best score, resolved
config); only the newest ``keep_checkpoints`` epoch files are kept. ``--resume`` continues the same run
bit for bit on the CPU: every random choice is derived from (seed, epoch, sample index). A new run into
a folder that already holds a run of the same name is refused unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
from contextlib import ExitStack
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

from core.devices import resolve_device, resolve_precision
from core.files import atomic_path, name_problem, path_problem, remove_inside, write_text_atomic
from core.input_spec import InputSpec, normalize_batch
from core.metrics import video_scores
from core.run_control import LOCKS_FOLDER, LockError, Stopped, hold_lock, stop_exit_code, stop_on_sigterm
from datasets.layout import DataLayout
from models.checkpoints import (
    checkpoint_path,
    load_state_dict_strict,
    parse_checkpoint_name,
    read_checkpoint,
    run_files,
    run_name,
    save_checkpoint,
    save_error,
)
from models.registry import create_model, get_family, input_spec
from models.weights import default_weights_dir
from training.datasets.classifier_dataset import DeepFakeClassifierDataset, read_folds, split_folds
from training.tools.config import load_config
from training.tools.schedulers import create_optimizer, create_scheduler
from training.transforms.augmentations import tensor_to_image

log = logging.getLogger("train_classifier")

SELECTION_METRIC = "balanced_log_loss"  # mean of the fake and real log losses, lower is better


@dataclass
class TrainOptions:
    data_dir: str
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    fold: int = 0
    test_fold: int | None = None  # left out of training and validation (a test set the selection never sees)
    seed: int = 111
    output_dir: str = "weights"
    log_dir: str = "logs"
    prefix: str = ""
    resume: str | None = None  # a checkpoint, or "last": this run's <name>_last in output_dir when there is one
    from_zero: bool = False
    overwrite: bool = False  # replace a run of the same name in output_dir instead of refusing
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


class RunExistsError(Exception):
    """The weights folder already holds the run this call would write; the message says how to go on."""


@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launched: bool = False  # started by torchrun: DDP (and SyncBatchNorm on GPUs) even for one process

    @property
    def distributed(self) -> bool:
        return self.launched or self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_request: str) -> tuple[DistContext, torch.device]:
    """Read torchrun's environment; NCCL on GPUs, gloo on the CPU."""
    ctx = DistContext(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                      int(os.environ.get("WORLD_SIZE", 1)), launched="TORCHELASTIC_RUN_ID" in os.environ)
    device = torch.device(resolve_device(device_request, local_rank=ctx.local_rank))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if ctx.distributed and not dist.is_initialized():
        # rank 0 validates while the others wait at a barrier: allow a long validation
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=2))
    return ctx, device


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The config's ``amp`` as an autocast dtype; None: no mixed precision (fp32)."""
    dtype = resolve_precision(amp, str(device), training=True)
    return None if dtype == torch.float32 else dtype


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


def _seed_everything(seed: int, epoch: int, rank: int) -> None:
    """Torch's global RNG (dropout, drop-path) from (seed, epoch, rank): no state to carry over."""
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch, rank, 7]).generate_state(1)[0]))


def _worker_init(_worker_id: int) -> None:
    import cv2

    cv2.setNumThreads(0)  # the loader workers already run in parallel


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, dtype: torch.dtype | None,
             channels_last: bool, spec: InputSpec, progress: bool = False) -> dict[str, Any]:
    """Per-video mean of the frame probabilities, then video_scores (log losses, AUC)."""
    from tqdm import tqdm

    model.eval()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    labels: dict[str, float] = {}
    for batch in tqdm(loader, desc="validation", disable=not progress, leave=False):
        images = normalize_batch(batch["image"].to(device, non_blocking=True), spec)
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


def _drop_replaced(weights_dir: Path, name: str, replaced: list[Path], resume_epoch: int | None) -> None:
    """--overwrite: delete the files the new run replaces, so that no old _best or epoch is mixed with its
    files. Resuming an earlier epoch also drops a _best made after that epoch."""
    doomed = list(replaced)
    best = checkpoint_path(weights_dir, name, "best")
    if resume_epoch is not None and best.is_file() and int(read_checkpoint(best).get("epoch", -1)) > resume_epoch:
        doomed.append(best)
    for path in doomed:
        remove_inside(weights_dir, path)
    log.warning("%s: --overwrite: deleted %s", name, ", ".join(p.name for p in doomed))


def _copy_atomic(src: Path, dst: Path) -> None:
    try:
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    except OSError as exc:
        raise save_error(dst, exc, src.stat().st_size) from exc


def resolve(options: TrainOptions, resume_data: dict | None = None) -> dict:
    """The config of this run: the checkpoint's when resuming without --config, else the file."""
    base = None
    if options.config is None and resume_data is not None and not options.from_zero:
        base = resume_data.get("config") or None
    config = load_config(options.config, options.overrides, base=base)
    if options.no_hardcore:
        config["hardcore"] = False
    if options.padding_part is not None:
        config["padding_part"] = options.padding_part
    if options.workers is not None:
        config["workers"] = options.workers
    return config


def resume_checkpoint(options: TrainOptions) -> Path | None:
    """The checkpoint to resume from: ``--resume PATH``, or for ``--resume last`` this run's ``_last`` in
    the weights folder (None when it has none yet: the run starts)."""
    if not options.resume:
        return None
    if options.resume == "last":
        if options.config is None:
            raise ValueError("--resume last needs --config: the run name (and so its _last file) comes from it")
        config = load_config(options.config, options.overrides)
        last = checkpoint_path(options.output_dir, checked_run_name(config, int(options.seed), options.prefix), "last")
        if not last.is_file():
            log.info("--resume last: no %s yet in %s; starting the run", last.name, last.parent)
            return None
        return last
    problem = path_problem(options.resume, want="file")
    if problem:
        raise ValueError(f"--resume {options.resume} {problem}; pass a checkpoint file such as "
                         f"{Path(options.output_dir) / '<name>_last'} (or --resume last)")
    return Path(options.resume)


def checked_run_name(config: dict, seed: int, prefix: str) -> str:
    """The run's name, which names its files in the weights folder and its log folder: ValueError when it
    could not (a ``--prefix`` holding a path separator or starting with a dot)."""
    name = run_name(config, seed, prefix)
    problem = name_problem(name)
    if problem:
        raise ValueError(f"the run name {name!r} (--prefix {prefix!r} + network_encoder_seed) {problem}; it names "
                         f"files in --output-dir and a folder in --log-dir, so pass a plain --prefix such as "
                         f"'trial1_' (to write elsewhere, use --output-dir / --log-dir)")
    return name


def check_run_folder(weights_dir: Path, name: str, resume_epoch: int | None, overwrite: bool) -> list[Path]:
    """The files of run ``name`` that this call would overwrite, or RunExistsError when there are any and
    ``overwrite`` is not set. A new run (``resume_epoch`` None) overwrites every file of that name; a
    resumed one the epochs after ``resume_epoch``."""
    existing = [p for p in run_files(weights_dir, name) if parse_checkpoint_name(p.name).which != "args"]
    if resume_epoch is None:
        clashing = existing
    else:
        clashing = [p for p in existing if isinstance(parse_checkpoint_name(p.name).which, int)
                    and parse_checkpoint_name(p.name).which > resume_epoch]
    if clashing and not overwrite:
        if resume_epoch is None:
            raise RunExistsError(
                f"{weights_dir} already holds a run named {name} ({', '.join(p.name for p in existing)}); "
                f"continue it with --resume {checkpoint_path(weights_dir, name, 'last')} (train.sh --resume), "
                f"start it again with --overwrite (its files are deleted), or write elsewhere "
                f"(--output-dir / WEIGHTS_DIR, or --prefix)")
        later = sorted(parse_checkpoint_name(p.name).which for p in clashing)
        raise RunExistsError(
            f"{weights_dir} holds {name} up to epoch {later[-1]}; resuming after epoch {resume_epoch} would "
            f"overwrite epochs {later[0]}-{later[-1]}; resume from {checkpoint_path(weights_dir, name, 'last')}, "
            f"or pass --overwrite to drop the later epochs")
    return clashing


def prune_epochs(weights_dir: Path, name: str, keep: int | None) -> list[Path]:
    """Delete all but the newest ``keep`` ``<name>_<epoch>`` files (None: keep all); ``_best``, ``_last``
    and other runs' files are never touched. Returns the deleted paths."""
    if keep is None:
        return []
    epochs = sorted((parse_checkpoint_name(p.name).which, p) for p in run_files(weights_dir, name)
                    if isinstance(parse_checkpoint_name(p.name).which, int))
    doomed = [p for _, p in epochs[:max(len(epochs) - keep, 0)]]
    for path in doomed:
        remove_inside(weights_dir, path)
    return doomed


def remove_stale_run_temps(weights_dir: Path, name: str) -> int:
    """Temp files a killed save of run ``name`` left (``.tmp.<name>_last.*``); other runs' are left alone,
    they may be in flight."""
    from core.files import remove_stale_temps

    def owned(target: str) -> bool:
        parsed = parse_checkpoint_name(target)
        return parsed is not None and parsed.run == name

    return remove_stale_temps(weights_dir, owned)


def run_lock(weights_dir: Path, name: str):
    """The lock rank 0 holds while it trains run ``name`` into ``weights_dir`` (a context manager): a
    second trainer of that run there is refused with a LockError naming the first; other runs (seeds)
    may train into the same folder at the same time."""
    return hold_lock(weights_dir / LOCKS_FOLDER / f"{name}.lock", f"a trainer of {name} in {weights_dir}",
                     "wait for it to end or stop it (kill its pid; train.sh --resume then continues after its "
                     "last finished epoch), or train into another folder (WEIGHTS_DIR / --output-dir)")


def train(options: TrainOptions) -> TrainResult:
    ctx, device = init_distributed(options.device)
    try:
        with ExitStack() as held:  # the run lock, from the moment the run's name is known to the end
            return _train(options, ctx, device, held)
    finally:
        if ctx.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(options: TrainOptions, ctx: DistContext, device: torch.device, held: ExitStack) -> TrainResult:
    resume_path = resume_checkpoint(options)
    resume_data = read_checkpoint(resume_path) if resume_path is not None else None
    config = resolve(options, resume_data)
    seed = int(options.seed)
    name = checked_run_name(config, seed, options.prefix)
    dtype = autocast_dtype(config["amp"], device)  # a precision this device lacks fails here, before any work
    weights_dir = Path(options.output_dir)
    if ctx.is_main:
        held.enter_context(run_lock(weights_dir, name))
    continuing = resume_data is not None and not options.from_zero
    resume_epoch = int(resume_data["epoch"]) if continuing else None
    replaced = check_run_folder(weights_dir, name, resume_epoch, options.overwrite)
    run_log_dir = Path(options.log_dir) / name
    folds_source = str(DataLayout(options.data_dir).folds_csv)
    train_rows, val_rows = split_folds(read_folds(options.data_dir), options.fold, options.full_val, folds_source,
                                       fakes=config["fakes"], test_fold=options.test_fold)

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)
    model = create_model(config)
    spec = input_spec(config)
    init_source = "random initialisation"
    if resume_data is None:
        init_source = get_family(config).init_weights(model, config)
    model.to(device)
    if config["channels_last"]:
        model.to(memory_format=torch.channels_last)

    train_set = DeepFakeClassifierDataset(options.data_dir, train_rows, "train", spec, seed=seed,
                                          hardcore=config["hardcore"], padding_part=config["padding_part"],
                                          label_smoothing=config["label_smoothing"], augment=config["augment"],
                                          fakes=config["fakes"])
    val_set = DeepFakeClassifierDataset(options.data_dir, val_rows, "val", spec, seed=seed,
                                        fakes=config["fakes"])
    sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=seed, drop_last=True)
    workers = int(config["workers"])
    train_loader = DataLoader(train_set, batch_size=config["batch_size"], sampler=sampler, num_workers=workers,
                              drop_last=True, pin_memory=device.type == "cuda", worker_init_fn=_worker_init)
    if len(train_loader) == 0:
        raise ValueError(f"{folds_source}: the training folds give {len(train_set)} training crops per "
                         f"epoch, fewer than batch_size {config['batch_size']} x {ctx.world_size} processes; "
                         f"lower batch_size (--set batch_size=N) or add data")
    steps_per_epoch = min(len(train_loader), int(config["batches_per_epoch"]))
    total_steps = steps_per_epoch * int(config["epochs"])

    optimizer = create_optimizer(model.parameters(), config["optimizer"])
    scheduler = create_scheduler(optimizer, config["schedule"], total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    start_epoch, best_score = 0, math.inf
    if resume_data is not None:
        load_state_dict_strict(model, resume_data["state_dict"], str(resume_path))
        init_source = f"weights of {resume_path}"
        if continuing:
            optimizer.load_state_dict(resume_data["optimizer"])
            scheduler.load_state_dict(resume_data["scheduler"])
            scaler.load_state_dict(resume_data["scaler"])
            start_epoch = resume_epoch + 1
            best_score = float(resume_data.get("best_score", math.inf))
            init_source = f"resumed from {resume_path} after epoch {resume_epoch}"
    del resume_data  # the optimizer state of a large model: not kept twice

    if ctx.distributed:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = DistributedDataParallel(model, device_ids=[device.index], output_device=device.index)
        else:
            model = DistributedDataParallel(model)
    bare_model = model.module if ctx.distributed else model

    val_loader = DataLoader(val_set, batch_size=config["batch_size"] * 2, shuffle=False, num_workers=workers,
                            pin_memory=device.type == "cuda", worker_init_fn=_worker_init)
    run_info = {"data_dir": str(options.data_dir), "fold": options.fold, "test_fold": options.test_fold,
                "seed": seed, "name": name,
                "world_size": ctx.world_size, "ddp": ctx.distributed,
                "sync_batchnorm": ctx.distributed and device.type == "cuda",
                "device": str(device), "amp_dtype": str(dtype or torch.float32).replace("torch.", ""),
                "init": init_source, "resume": str(resume_path) if resume_path else None,
                "from_zero": options.from_zero,
                "full_val": options.full_val, "steps_per_epoch": steps_per_epoch}
    writer = None
    if ctx.is_main:
        weights_dir.mkdir(parents=True, exist_ok=True)
        run_log_dir.mkdir(parents=True, exist_ok=True)
        removed_temps = remove_stale_run_temps(weights_dir, name)
        if removed_temps:
            log.info("%s: removed %d temp file(s) of an interrupted checkpoint save", name, removed_temps)
        if replaced:
            _drop_replaced(weights_dir, name, replaced, resume_epoch)
        resolved = json.dumps({"config": config, "run": run_info}, indent=2, sort_keys=True)
        write_text_atomic(checkpoint_path(weights_dir, name, "args"), resolved)
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
            images = normalize_batch(batch["image"].to(device, non_blocking=True), spec)
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
                metrics = evaluate(bare_model, val_loader, device, dtype, config["channels_last"], spec,
                                   options.progress)
                for key, value in metrics.items():
                    writer.add_scalar(f"val/{key}", value, epoch)
                score = metrics[SELECTION_METRIC]
                improved = bool(np.isfinite(score) and score < best_score)
                best_score = score if improved else best_score
                log.info("%s epoch %d: val %s", name, epoch,
                         ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
            path = checkpoint_path(weights_dir, name, epoch)
            save_checkpoint(path, bare_model, config, optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), scaler=scaler.state_dict(), epoch=epoch,
                            best_score=best_score, metrics=metrics, run=run_info)
            _copy_atomic(path, checkpoint_path(weights_dir, name, "last"))
            checkpoints += [path, checkpoint_path(weights_dir, name, "last")]
            if improved:
                _copy_atomic(path, checkpoint_path(weights_dir, name, "best"))
                checkpoints.append(checkpoint_path(weights_dir, name, "best"))
            pruned = prune_epochs(weights_dir, name, config["keep_checkpoints"])
            checkpoints = [c for c in checkpoints if c not in pruned]
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
    data.add_argument("--test-fold", type=int, default=None,
                      help="a fold left out of training and validation, to test on afterwards")
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
    run.add_argument("--output-dir", default=str(default_weights_dir()),
                     help="checkpoint folder ($WEIGHTS_DIR, else weights/ in the repository)")
    run.add_argument("--log-dir", default=os.environ.get("LOG_DIR", "logs"),
                     help="TensorBoard logs go to LOG_DIR/<name>/")
    run.add_argument("--resume", default=None, metavar="CKPT|last",
                     help="checkpoint to continue (same schedule, same data order); 'last': this run's _last "
                          "in --output-dir, or a new run when there is none yet")
    run.add_argument("--from-zero", action="store_true", help="with --resume: reuse the weights only")
    run.add_argument("--overwrite", action="store_true",
                     help="replace a run of the same name in --output-dir (default: refuse)")
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
        with stop_on_sigterm():
            result = train(options)
    except (Stopped, KeyboardInterrupt) as exc:
        print(f"\n{str(exc) or 'stopped by SIGINT'}: the epoch in progress is lost, the ones finished are saved "
              f"(<name>_last in {options.output_dir}); continue with --resume last (train.sh --resume)", file=sys.stderr)
        return stop_exit_code(exc)
    except Exception as exc:
        from models.checkpoints import CheckpointError
        from models.pretrained import PretrainedError
        from training.datasets.classifier_dataset import FoldsError
        from training.tools.config import ConfigError

        if isinstance(exc, (FoldsError, ConfigError, CheckpointError, PretrainedError, RunExistsError,
                            LockError, ValueError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    if rank == 0:
        summary = {"name": result.name, "best_score": result.best_score, "epochs_run": result.epochs_run,
                   "metrics": result.metrics}
        print(json.dumps(summary, default=float))
        best = checkpoint_path(result.weights_dir, result.name, "best")
        print(f"weights: {result.weights_dir.resolve()}/{result.name}_{{best,last,<epoch>}}"
              f"{'' if best.exists() else ' (no _best yet)'}; TensorBoard: tensorboard --logdir {result.log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
