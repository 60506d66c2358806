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
import dataclasses
import json
import logging
import os
import sys
from contextlib import ExitStack
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from core.files import path_problem
from core.input_spec import InputSpec
from core.options import field_types, option
from core.run_control import LockError, Stopped, stop_exit_code, stop_on_sigterm
from models.checkpoints import checkpoint_path, read_checkpoint
from models.registry import create_model, get_family, input_spec
from models.weights import default_weights_dir
from training.datasets.classifier_dataset import identity_group_subset, identity_groups_of, read_folds
from training.datasets.training_data import TrainingData, training_data
from training.hooks import (
    CalibrationHook,
    CheckpointHook,
    ProgressHook,
    ResumeHook,
    TensorBoardHook,
    ValidationHook,
)
from training.run_folder import RunExistsError, check_run_folder, checked_run_name, run_lock
from training.tools.config import ConfigError, TrainConfig, load_config
from training.tools.schedulers import create_optimizer, create_scheduler
from training.trainer import DistContext, HookBase, Trainer, TrainParts, autocast_dtype, init_distributed

log = logging.getLogger("train_classifier")


@dataclass(frozen=True)
class TrainOptions:
    """One call of the trainer (the command line's flags); the run's settings are its ``TrainConfig``."""

    data_dir: str = option(MISSING, "DATA_ROOT with folds.csv and crops/")
    fold: int = option(0, "validation fold; the others are trained on")
    test_fold: int | None = option(None, "a fold left out of training and validation, to test on afterwards")
    full_val: bool = option(False, "validate on every frame, not every 20th")
    no_validation: bool = option(False, "train on --fold too (every fold but --test-fold): no validation, so no "
                                 "_best and no calibration; the run's model is its _last")
    no_hardcore: bool = option(False, "no landmark/hull/bit-mask cutouts")
    padding_part: int | None = option(None, "keep 1/N of the face size as context on each side (3 = the whole crop)")
    workers: int | None = option(None, "loader processes per GPU (config 'workers')")
    config: str | None = option(None, "JSON config (configs/b7.json, ...)")
    overrides: tuple[str, ...] = option((), "override a config value, e.g. --set optimizer.lr=0.001 (repeatable)",
                                  flag="--set", metavar="KEY=VALUE")
    seed: int = option(111, "the run's seed: every random choice follows from it, and it names the run")
    prefix: str = option("", "prepended to the run name")
    output_dir: str = option("weights", "checkpoint folder ($WEIGHTS_DIR, else weights/ in the repository)")
    log_dir: str = option("logs", "TensorBoard logs go to LOG_DIR/<name>/")
    resume: str | None = option(None, "checkpoint to continue (same schedule, same data order); 'last': this run's "
                                "_last in --output-dir, or a new run when there is none yet", metavar="CKPT|last")
    from_zero: bool = option(False, "with --resume: reuse the weights only")
    overwrite: bool = option(False, "replace a run of the same name in --output-dir (default: refuse)")
    stop_after: int | None = option(None, "run at most this many epochs now (the schedule still spans all epochs)")
    device: str = option("auto", "auto, cpu or cuda")
    progress: bool = option(True, "no tqdm bars", flag="--no-progress")


DATA_FLAGS = ("data_dir", "fold", "test_fold", "full_val", "no_validation", "no_hardcore", "padding_part", "workers")
# defaults the command line reads from the environment when it is built
CLI_DEFAULTS = {"output_dir": lambda: str(default_weights_dir()), "log_dir": lambda: os.environ.get("LOG_DIR", "logs")}


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
class RunPlan:
    """What a call settles before any work: the config, the run's name and folders, what it resumes."""

    config: TrainConfig
    name: str
    seed: int
    dtype: torch.dtype | None
    weights_dir: Path
    log_dir: Path
    resume_path: Path | None
    continuing: bool  # resuming the run itself (not --from-zero)
    resume_epoch: int | None
    replaced: list[Path]  # this run's files in the weights folder that --overwrite lets it replace


def resolve(options: TrainOptions, resume_data: dict | None = None) -> TrainConfig:
    """The config of this run: the checkpoint's when resuming without --config, else the file; the
    trainer's own flags (--no-hardcore, --padding-part, --workers) over both."""
    base = None
    if options.config is None and resume_data is not None and not options.from_zero:
        base = resume_data.get("config") or None
    config = load_config(options.config, options.overrides, base=base)
    flags = {"hardcore": False if options.no_hardcore else None, "padding_part": options.padding_part,
             "workers": options.workers}
    return dataclasses.replace(config, **{k: v for k, v in flags.items() if v is not None})


def resume_checkpoint(options: TrainOptions) -> Path | None:
    """The checkpoint to resume from: ``--resume PATH``, or for ``--resume last`` this run's ``_last`` in
    the weights folder (None when it has none yet: the run starts)."""
    if not options.resume:
        return None
    if options.resume == "last":
        if options.config is None:
            raise ValueError("--resume last needs --config: the run name (and so its _last file) comes from it")
        config = load_config(options.config, options.overrides)
        name = checked_run_name(config.as_dict(), int(options.seed), options.prefix)
        last = checkpoint_path(options.output_dir, name, "last")
        if not last.is_file():
            log.info("--resume last: no %s yet in %s; starting the run", last.name, last.parent)
            return None
        return last
    problem = path_problem(options.resume, want="file")
    if problem:
        raise ValueError(f"--resume {options.resume} {problem}; pass a checkpoint file such as "
                         f"{Path(options.output_dir) / '<name>_last'} (or --resume last)")
    return Path(options.resume)


def plan_run(options: TrainOptions, ctx: DistContext, device: torch.device,
             held: ExitStack) -> tuple[RunPlan, dict | None]:
    """The run's plan and the checkpoint it resumes (None: a new run). Rank 0 takes the run's lock into
    ``held``; a bad config, a precision this device lacks or a run that would be replaced unasked fail
    here, before any work."""
    resume_path = resume_checkpoint(options)
    resume_data = read_checkpoint(resume_path) if resume_path is not None else None
    config = resolve(options, resume_data)
    seed = int(options.seed)
    name = checked_run_name(config.as_dict(), seed, options.prefix)
    dtype = autocast_dtype(config.amp, device)
    weights_dir = Path(options.output_dir)
    if ctx.is_main:
        held.enter_context(run_lock(weights_dir, name))
    continuing = resume_data is not None and not options.from_zero
    resume_epoch = int(resume_data["epoch"]) if continuing else None
    replaced = check_run_folder(weights_dir, name, resume_epoch, options.overwrite)
    plan = RunPlan(config, name, seed, dtype, weights_dir, Path(options.log_dir) / name, resume_path, continuing,
                   resume_epoch, replaced)
    return plan, resume_data


def _worker_init(_worker_id: int) -> None:
    import cv2

    cv2.setNumThreads(0)  # the loader workers already run in parallel


def build_model(config: TrainConfig, device: torch.device, pretrained: bool) -> tuple[torch.nn.Module, str]:
    """The config's network (its model family's) on ``device`` and where its weights come from (the
    family's pretrained weights unless a checkpoint follows)."""
    model_config = config.as_dict()
    model = create_model(model_config)
    init_source = "random initialisation"
    if pretrained:
        init_source = get_family(model_config).init_weights(model, model_config)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, init_source


def split_rows(options: TrainOptions, config: TrainConfig, seed: int, data: TrainingData | None = None
               ) -> tuple[Any, Any, str, dict]:
    """The folds.csv rows to train and to validate on (``options.fold`` validates, ``test_fold`` is left
    out; ``train_videos``: a subset of whole identity groups drawn from ``seed``), the file they come from
    and the training videos used (for the run's record). ``data``: what the model trains on (default: the
    config's family's, crops or clips)."""
    data = data or training_data(input_spec(config.as_dict()))
    train_rows, val_rows, folds_source = data.split(options.data_dir, options.fold, options.full_val, config.fakes,
                                                    options.test_fold)
    if options.no_validation:  # the validation fold is trained on too, every frame
        folds = read_folds(options.data_dir)
        train_rows = folds[folds["fold"] != options.test_fold].reset_index(drop=True)
    available = train_rows["video"].nunique()
    used = {"train_videos_available": int(available), "train_videos_used": int(available),
            "train_identity_groups": None}
    if config.train_videos is not None:
        group_of = identity_groups_of(options.data_dir, train_rows)
        train_rows, groups = identity_group_subset(train_rows, config.train_videos, seed, group_of)
        used.update(train_videos_used=int(train_rows["video"].nunique()), train_identity_groups=groups)
        log.info("train_videos=%d: training on %d of the %d training videos (%d whole identity groups, drawn "
                 "with seed %d)", config.train_videos, used["train_videos_used"], available, len(groups), seed)
    return train_rows, val_rows, folds_source, used


def build_loaders(options: TrainOptions, plan: RunPlan, ctx: DistContext, device: torch.device, rows: tuple,
                  spec: InputSpec, data: TrainingData):
    """The datasets (``data``'s: crops or clips, samples as the model's input ``spec`` says), the training
    sampler and the two loaders."""
    config, seed = plan.config, plan.seed
    train_rows, val_rows, folds_source, _ = rows
    train_set = data.dataset(options.data_dir, train_rows, "train", spec, config.as_dict(), seed)
    val_set = data.dataset(options.data_dir, val_rows, "val", spec, config.as_dict(), seed)
    sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed,
                                 drop_last=True)
    workers = int(config.workers)
    train_loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler, num_workers=workers,
                              drop_last=True, pin_memory=device.type == "cuda", worker_init_fn=_worker_init)
    if len(train_loader) == 0:
        raise ValueError(f"{folds_source}: the training folds give {len(train_set)} training {data.noun} per "
                         f"epoch, fewer than batch_size {config.batch_size} x {ctx.world_size} processes; "
                         f"lower batch_size (--set batch_size=N) or add data")
    val_loader = DataLoader(val_set, batch_size=config.batch_size * 2, shuffle=False, num_workers=workers,
                            pin_memory=device.type == "cuda", worker_init_fn=_worker_init)
    return train_set, val_set, sampler, train_loader, val_loader


def with_recorded(config: TrainConfig, values: dict) -> TrainConfig:
    """``config`` with the values the training data fixes (a clip family: the clips' side, ``clip_size``), so
    that the checkpoint records them; ConfigError when the config gave another value."""
    for key, value in values.items():
        given = getattr(config, key)
        if given is not None and given != value:
            raise ConfigError(f"the config sets {key}={given} but the training data's clips are {value} px; remove "
                              f"{key} from the config (training records the clips' own side) or remake the clips "
                              f"with --clip-size {given}")
    return dataclasses.replace(config, **values) if values else config


def build_parts(options: TrainOptions, plan: RunPlan, ctx: DistContext,
                device: torch.device) -> tuple[TrainParts, DataLoader]:
    """What the loop trains with, and the validation loader."""
    config, seed = plan.config, plan.seed
    spec = input_spec(config.as_dict())
    data = training_data(spec)  # crops or clips: what the family's input spec takes
    rows = split_rows(options, config, seed, data)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)
    model, init_source = build_model(config, device, pretrained=plan.resume_path is None)
    train_set, val_set, sampler, train_loader, val_loader = build_loaders(options, plan, ctx, device, rows, spec,
                                                                          data)
    config = with_recorded(config, data.recorded(train_set))
    steps_per_epoch = min(len(train_loader), int(config.batches_per_epoch))
    optimizer = create_optimizer(model.parameters(), config.optimizer.as_dict())
    scheduler = create_scheduler(optimizer, config.schedule.as_dict(), steps_per_epoch * int(config.epochs))
    scaler = torch.amp.GradScaler(device.type, enabled=plan.dtype == torch.float16)
    run_info = {"data_dir": str(options.data_dir), "fold": options.fold, "test_fold": options.test_fold,
                "no_validation": options.no_validation,
                "seed": seed, "name": plan.name,
                "world_size": ctx.world_size, "ddp": ctx.distributed,
                "sync_batchnorm": ctx.distributed and device.type == "cuda",
                "device": str(device), "amp_dtype": str(plan.dtype or torch.float32).replace("torch.", ""),
                "init": init_source, "resume": str(plan.resume_path) if plan.resume_path else None,
                "from_zero": options.from_zero,
                "full_val": options.full_val, "steps_per_epoch": steps_per_epoch, **rows[3]}
    val_text = "no validation" if options.no_validation else f"{len(val_set)} val {data.noun}"
    summary = (f"{rows[3]['train_videos_used']} train videos, {len(train_set)} train {data.noun}/epoch, {val_text}, "
               f"{steps_per_epoch} steps/epoch x "
               f"{config.epochs} epochs, {device}, amp {plan.dtype}")
    parts = TrainParts(config, plan.name, seed, ctx, device, plan.dtype, model, spec, optimizer, scheduler, scaler,
                       train_set, sampler, train_loader, steps_per_epoch, run_info, summary,
                       batch_mix=data.batch_mix(config.as_dict()), preview=data.preview)
    return parts, val_loader


def build_hooks(options: TrainOptions, plan: RunPlan, ctx: DistContext, val_loader: DataLoader,
                resume_data: dict | None) -> list[HookBase]:
    """Resume and progress on every rank; validation, checkpoints, calibration and TensorBoard on rank 0."""
    hooks: list[HookBase] = []
    if resume_data is not None:
        hooks.append(ResumeHook(plan.resume_path, resume_data, plan.continuing))
    hooks.append(ProgressHook(options.progress and ctx.is_main))
    if ctx.is_main and options.no_validation:
        hooks += [CheckpointHook(plan.weights_dir, plan.log_dir, plan.replaced, plan.resume_epoch),
                  TensorBoardHook(plan.log_dir)]
    elif ctx.is_main:
        hooks += [ValidationHook(val_loader, options.progress),
                  CheckpointHook(plan.weights_dir, plan.log_dir, plan.replaced, plan.resume_epoch),
                  CalibrationHook(plan.weights_dir, val_loader, options.fold, options.progress),
                  TensorBoardHook(plan.log_dir)]
    return hooks


def train(options: TrainOptions) -> TrainResult:
    ctx, device = init_distributed(options.device)
    try:
        with ExitStack() as held:  # the run lock, from the moment the run's name is known to the end
            plan, resume_data = plan_run(options, ctx, device, held)
            parts, val_loader = build_parts(options, plan, ctx, device)
            trainer = Trainer(parts, build_hooks(options, plan, ctx, val_loader, resume_data), options.stop_after)
            del resume_data  # the resume hook holds it until it is loaded
            trainer.train()
            written = next((h.written for h in trainer.hooks if isinstance(h, CheckpointHook)), [])
            return TrainResult(plan.name, plan.weights_dir, plan.log_dir, trainer.step_losses, trainer.epochs_run,
                               trainer.best_score, trainer.metrics, written)
    finally:
        if ctx.distributed and dist.is_initialized():
            dist.destroy_process_group()


def build_parser() -> argparse.ArgumentParser:
    """One flag per TrainOptions field (its help from the field), in two groups."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    groups = {"data": parser.add_argument_group("data"), "run": parser.add_argument_group("run")}
    types = field_types(TrainOptions)
    for spec in dataclasses.fields(TrainOptions):
        meta, kind = spec.metadata, types[spec.name].kind
        flag = meta["flag"] or "--" + spec.name.replace("_", "-")
        group = groups["data" if spec.name in DATA_FLAGS else "run"]
        default = CLI_DEFAULTS[spec.name]() if spec.name in CLI_DEFAULTS else spec.default
        if kind is bool:
            group.add_argument(flag, dest=spec.name, action="store_false" if spec.default else "store_true",
                               help=meta["help"])
        elif kind in (list, tuple):
            group.add_argument(flag, dest=spec.name, action="append", default=[], metavar=meta["metavar"],
                               help=meta["help"])
        elif default is MISSING:
            group.add_argument(flag, dest=spec.name, type=kind, required=True, help=meta["help"])
        else:
            group.add_argument(flag, dest=spec.name, type=kind, default=default, metavar=meta["metavar"],
                               help=meta["help"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = TrainOptions(**vars(args))
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
