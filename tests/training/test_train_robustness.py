"""Training runs that must not lose or silently reuse anything: an existing run is never overwritten
without --overwrite, old epochs are pruned (never _best/_last or another run's files), temp files of a
killed save are removed by the next run, train.sh resumes, appends its log and refuses CUDA-less GPUs,
a second trainer of a running run is refused, SIGTERM to train.sh stops the trainer, and a checkpoint
save on a full disk says so."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.run_control import LOCKS_FOLDER
from models.checkpoints import (
    CheckpointName,
    CheckpointSaveError,
    checkpoint_path,
    parse_checkpoint_name,
    read_checkpoint,
    run_files,
    save_checkpoint,
)
from models.checkpoints import run_name as build_run_name
from models.weights import default_weights_dir
from tests.conftest import child_pids, command_line, is_alive, wait_for
from training.pipelines.train_classifier import (
    RunExistsError,
    TrainOptions,
    main,
    run_lock,
    train,
)
from training.run_folder import prune_epochs

REPO = Path(__file__).resolve().parents[2]
NAME = "DeepFakeClassifier_tf_efficientnet_lite0_111"
# one step per epoch, no validation until the last epoch: the cheapest real run
TINY = ["encoder=tf_efficientnet_lite0", "pretrained=lite0-package", "size=64", "batch_size=4", "workers=0",
        "drop_path_rate=0", "tensorboard_images=0", 'optimizer={"type": "Adam", "lr": 0.001}',
        "schedule.type=constant", "batches_per_epoch=1", "val_every=100", "augment=false", "hardcore=false"]


def _options(root, weights, *extra, **kwargs) -> TrainOptions:
    return TrainOptions(data_dir=str(root), overrides=TINY + list(extra), seed=111, progress=False,
                        output_dir=str(weights), log_dir=str(weights.parent / "logs"), **kwargs)


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1",
               OMP_NUM_THREADS="1")
    env.pop("WEIGHTS_DIR", None)
    env.pop("OUTPUT_DIR", None)
    env.update(extra)
    return env


# ---- checkpoint names: one module builds and parses them ---------------------------------------------


def test_checkpoint_names_build_and_parse():
    config = {"network": "DeepFakeClassifier", "encoder": "tf_efficientnet_b7_ns"}
    name = build_run_name(config, 111, prefix="exp1_")
    assert name == "exp1_DeepFakeClassifier_tf_efficientnet_b7_ns_111"
    for which, expected in [("best", "best"), ("last", "last"), (7, 7), ("args", "args")]:
        path = checkpoint_path("w", name, which)
        assert parse_checkpoint_name(path.name) == CheckpointName(name, expected), which
    assert checkpoint_path("w", name, "args").name == f"{name}_args.json"
    assert parse_checkpoint_name("c_2_best.pth") == CheckpointName("c_2", "best")
    # the winner's released files: run ..._0, epoch 23
    assert parse_checkpoint_name("final_999_DeepFakeClassifier_tf_efficientnet_b7_ns_0_23") == CheckpointName(
        "final_999_DeepFakeClassifier_tf_efficientnet_b7_ns_0", 23)
    for other in [".tmp.a_0_best.abcdefgh", "a_0_best_old", "events.out.tfevents.1_last", "notes.txt", "best"]:
        assert parse_checkpoint_name(other) is None, other


def test_run_files_are_only_that_runs(tmp_path):
    names = [f"{NAME}_0", f"{NAME}_12", f"{NAME}_best", f"{NAME}_last", f"{NAME}_args.json",
             # other runs whose names start the same way
             f"{NAME}1_0", f"{NAME}1_best", f"x{NAME}_0", f"{NAME}_best.bak"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    found = sorted(p.name for p in run_files(tmp_path, NAME))
    assert found == sorted(names[:5])
    assert run_files(tmp_path / "missing", NAME) == []


def test_default_weights_dir_is_one_rule_for_training_and_prediction(tmp_path, monkeypatch):
    """train.sh used to write $PWD/weights while predict_submission.sh read <repo>/weights."""
    from prediction import cli
    from training.pipelines.train_classifier import build_parser

    monkeypatch.delenv("WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("OUTPUT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_weights_dir() == REPO / "weights"
    train_default = build_parser().parse_args(["--data-dir", "x"]).output_dir
    predict_default = cli.build_parser().parse_args(["--test-dir", "x", "--output", "o.csv"]).weights_dir
    assert Path(train_default) == Path(predict_default) == REPO / "weights"
    monkeypatch.setenv("WEIGHTS_DIR", "elsewhere")  # relative: to the working folder, for both
    assert default_weights_dir().absolute() == tmp_path / "elsewhere"
    assert Path(build_parser().parse_args(["--data-dir", "x"]).output_dir).absolute() == tmp_path / "elsewhere"
    assert Path(cli.build_parser().parse_args(["--video", "x", "--output", "o"]).weights_dir
                ).absolute() == tmp_path / "elsewhere"


# ---- a run never overwrites another one silently ------------------------------------------------------


def test_second_run_of_the_same_name_is_refused_unless_overwrite(preprocessed_root, tmp_path, capsys):
    weights = tmp_path / "weights"
    first = train(_options(preprocessed_root, weights, "epochs=2"))
    assert first.epochs_run == [0, 1]
    best_bytes = (weights / f"{NAME}_best").read_bytes()

    with pytest.raises(RunExistsError) as refused:
        train(_options(preprocessed_root, weights, "epochs=1"))
    message = str(refused.value)
    assert "--resume" in message and "--overwrite" in message and NAME in message and str(weights) in message
    assert (weights / f"{NAME}_best").read_bytes() == best_bytes
    # the CLI: exit 2, the same message, nothing written
    argv = ["--data-dir", str(preprocessed_root), "--output-dir", str(weights), "--log-dir", str(tmp_path / "l"),
            "--no-progress", *[a for o in TINY + ["epochs=1"] for a in ("--set", o)]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds" in err and "--overwrite" in err
    assert (weights / f"{NAME}_best").read_bytes() == best_bytes
    # from-zero is a new run too
    with pytest.raises(RunExistsError):
        train(_options(preprocessed_root, weights, "epochs=1", resume=str(weights / f"{NAME}_last"),
                       from_zero=True))

    # resuming an earlier epoch would overwrite the later ones: refused as well
    with pytest.raises(RunExistsError, match="epoch 1"):
        train(_options(preprocessed_root, weights, "epochs=3", resume=str(weights / f"{NAME}_0")))

    again = train(_options(preprocessed_root, weights, "epochs=1", overwrite=True))
    assert again.epochs_run == [0]
    # the old run's files are gone, not mixed with the new run's (.locks: the runs' lock files)
    assert sorted(p.name for p in weights.iterdir() if p.name != LOCKS_FOLDER) == sorted(
        [f"{NAME}_0", f"{NAME}_best", f"{NAME}_last", f"{NAME}_args.json"])


def _kill_during_save(target: Path) -> None:
    """A real kill -9 of a process in the middle of an atomic checkpoint write."""
    code = ("import os, sys\nfrom core.files import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'half a checkpoint')\n"
            "    os.kill(os.getpid(), 9)\n")
    run = subprocess.run([sys.executable, "-c", code, str(target)], cwd=REPO, env=_env(), timeout=120)
    assert run.returncode == -9


def test_retention_and_stale_temp_cleanup(preprocessed_root, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    other_run = "DeepFakeClassifier_tf_efficientnet_lite0_1110"
    others = [f"{other_run}_0", f"{other_run}_1", f"{other_run}_best", "final_111_DeepFakeClassifier_x_0_23"]
    for name in others:
        (weights / name).write_bytes(b"another run")
    _kill_during_save(weights / f"{NAME}_last")
    _kill_during_save(weights / f"{other_run}_last")
    temps = sorted(p.name for p in weights.iterdir() if p.name.startswith(".tmp"))
    assert len(temps) == 2

    result = train(_options(preprocessed_root, weights, "epochs=5", "keep_checkpoints=2", "val_every=2"))
    assert result.epochs_run == [0, 1, 2, 3, 4]
    names = sorted(p.name for p in weights.iterdir() if p.name != LOCKS_FOLDER)
    # the two newest epochs, best and last; the other run's files and temp file untouched
    expected = [f"{NAME}_3", f"{NAME}_4", f"{NAME}_best", f"{NAME}_last", f"{NAME}_args.json"] + others
    expected += [t for t in temps if other_run in t]
    assert names == sorted(expected)
    assert (weights / f"{other_run}_0").read_bytes() == b"another run"
    # _best comes from an earlier epoch than the ones kept, and survives the pruning
    from models.checkpoints import read_checkpoint

    assert read_checkpoint(weights / f"{NAME}_best")["epoch"] in (1, 3, 4)
    assert read_checkpoint(weights / f"{NAME}_last")["epoch"] == 4


def test_prune_epochs_keeps_the_newest_and_never_best_last_or_other_runs(tmp_path):
    names = [f"{NAME}_{e}" for e in (0, 1, 2, 10)] + [f"{NAME}_best", f"{NAME}_last", f"{NAME}_args.json",
                                                     f"{NAME}1_0", f"x{NAME}_3"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert prune_epochs(tmp_path, NAME, None) == []
    # epochs sort as numbers: 10 is the newest
    assert [p.name for p in prune_epochs(tmp_path, NAME, 2)] == [f"{NAME}_0", f"{NAME}_1"]
    assert [p.name for p in prune_epochs(tmp_path, NAME, 0)] == [f"{NAME}_2", f"{NAME}_10"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[4:])


# ---- train.sh ----------------------------------------------------------------------------------------


def _tiny_config(path: Path, epochs: int) -> Path:
    config = {}
    for item in TINY + [f"epochs={epochs}"]:
        key, _, raw = item.partition("=")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path.write_text(json.dumps(config))
    return path


@pytest.mark.slow
def test_train_sh_resume_flag_appended_log_and_overwrite_refusal(preprocessed_root, tmp_path):
    config = _tiny_config(tmp_path / "tiny.json", epochs=2)
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = str(REPO / "train.sh")
    # a relative WEIGHTS_DIR from another working folder: the same folder predict_submission.sh reads
    env = _env(WEIGHTS_DIR="runs/w", LOG_DIR=str(tmp_path / "logs"), TRAIN_ARGS="--stop-after 1")
    first = subprocess.run([script, str(preprocessed_root), "0", str(config), "111"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    weights = work / "runs" / "w"
    assert (weights / f"{NAME}_last").is_file()
    log = tmp_path / "logs" / "tiny_111.log"
    first_log = log.read_text()
    assert '"epochs_run": [0]' in first_log

    refused = subprocess.run([script, str(preprocessed_root), "0", str(config), "111"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2
    console = refused.stdout + refused.stderr  # train.sh tees both streams into the log
    assert "--resume" in console and "--overwrite" in console and "already holds" in log.read_text()

    env.pop("TRAIN_ARGS")
    resumed = subprocess.run([script, "--resume", str(preprocessed_root), "0", str(config), "111"], cwd=work,
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    text = log.read_text()
    assert text.startswith(first_log), "the console log is appended to, not overwritten"
    assert '"epochs_run": [1]' in text and "resumed from" in text

    # the prediction side finds these checkpoints with the same WEIGHTS_DIR from the same folder
    from prediction import cli, inputs

    old = Path.cwd()
    try:
        os.chdir(work)
        os.environ["WEIGHTS_DIR"] = "runs/w"
        default = cli.build_parser().parse_args(["--video", "v", "--output", "o"]).weights_dir
        assert [p.name for p in inputs.find_checkpoints(default)] == [f"{NAME}_best"]
    finally:
        os.chdir(old)
        del os.environ["WEIGHTS_DIR"]

    # --resume on a seed that has no run yet starts it
    fresh = subprocess.run([script, "--resume", str(preprocessed_root), "0", str(config), "222"], cwd=work,
                           env=env, capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert (weights / "DeepFakeClassifier_tf_efficientnet_lite0_222_last").is_file()
    assert "no DeepFakeClassifier_tf_efficientnet_lite0_222_last yet" in fresh.stderr + fresh.stdout


def test_train_sh_gpus_without_cuda_is_a_clear_error(preprocessed_root, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = _tiny_config(tmp_path / "tiny.json", epochs=1)
    run = subprocess.run([str(REPO / "train.sh"), str(preprocessed_root), "2", str(config), "111"], cwd=tmp_path,
                         env=_env(WEIGHTS_DIR=str(tmp_path / "w")), capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "NUM_GPUS=2" in run.stderr and "no CUDA" in run.stderr and "NUM_GPUS=0" in run.stderr
    assert not (tmp_path / "w").exists()


def test_train_sh_test_fold_reaches_the_trainer(preprocessed_root, tmp_path):
    """TEST_FOLD is passed on as --test-fold: on the two-fold sample it leaves nothing to train on, and the
    validation fold itself is refused; both before any weights are written."""
    config = _tiny_config(tmp_path / "tiny.json", epochs=1)
    for test_fold, message in (("1", "or the test fold 1, nothing is left to train on"),
                               ("0", "--test-fold 0 is the validation fold (--fold 0)")):
        run = subprocess.run([str(REPO / "train.sh"), str(preprocessed_root), "0", str(config), "111"],
                             cwd=tmp_path, env=_env(WEIGHTS_DIR=str(tmp_path / "w"), LOG_DIR=str(tmp_path / "logs"),
                                                    FOLD="0", TEST_FOLD=test_fold),
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, run.stderr[-2000:]
        assert message in run.stdout + run.stderr
    assert not any((tmp_path / "w").glob("*_last"))


def test_train_sh_usage_names_the_flags(tmp_path):
    run = subprocess.run([str(REPO / "train.sh")], env=_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--resume" in run.stderr and "--overwrite" in run.stderr
    bad = subprocess.run([str(REPO / "train.sh"), "--resmue", str(tmp_path), "0"], env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--resmue" in bad.stderr


def test_folder_as_resume_checkpoint_says_it_is_a_folder(preprocessed_root, tmp_path, capsys):
    argv = ["--data-dir", str(preprocessed_root), "--output-dir", str(tmp_path / "w"), "--resume", str(tmp_path),
            *[a for o in TINY for a in ("--set", o)]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--resume {tmp_path} is a folder" in err


def test_folder_as_config_says_it_is_a_folder(tmp_path):
    from training.tools.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=f"config {tmp_path} is a folder"):
        load_config(tmp_path)
    run = subprocess.run([str(REPO / "train.sh"), str(tmp_path), "0", str(tmp_path)], env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2  # DATA_ROOT has no folds.csv: that is said first
    (tmp_path / "folds.csv").write_text("video,file,label,original,frame,fold\n")
    run = subprocess.run([str(REPO / "train.sh"), str(tmp_path), "0", str(tmp_path)], env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and f"config {tmp_path} is a folder" in run.stderr


def test_a_prefix_that_would_leave_the_weights_folder_is_refused(preprocessed_root, tmp_path, capsys):
    weights = tmp_path / "weights"
    for prefix in ("../escaped_", ".hidden_", "a/b_"):
        argv = ["--data-dir", str(preprocessed_root), "--output-dir", str(weights), "--log-dir", str(tmp_path / "l"),
                "--no-progress", "--prefix", prefix, *[a for o in TINY + ["epochs=1"] for a in ("--set", o)]]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"--prefix {prefix!r}" in err and "plain --prefix" in err
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no checkpoint, log or args anywhere


# ---- one trainer per run, and one that stops when told to ---------------------------------------------


@pytest.mark.slow
def test_a_second_trainer_is_refused_and_sigterm_to_train_sh_stops_the_trainer(preprocessed_root, tmp_path):
    config = _tiny_config(tmp_path / "tiny.json", epochs=1000)
    weights = tmp_path / "w"
    env = _env(WEIGHTS_DIR=str(weights), LOG_DIR=str(tmp_path / "logs"))
    command = [str(REPO / "train.sh"), str(preprocessed_root), "0", str(config), "111"]
    console = tmp_path / "console.txt"
    with open(console, "w") as output:
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        wait_for(lambda: (weights / f"{NAME}_last").is_file(), 300, "the first epoch's checkpoint", first)
        trainer = next(pid for pid in child_pids(first.pid) if "train_classifier" in command_line(pid))
        # train.sh --resume beside the running trainer of the same run: refused, naming it
        second = subprocess.run([command[0], "--resume", *command[1:]], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 2, second.stdout[-3000:]
        lock = weights / LOCKS_FOLDER / f"{NAME}.lock"
        assert f"{lock} is held by pid {trainer} on {socket.gethostname()}" in second.stdout, second.stdout[-3000:]
        # another seed may train into the same folder meanwhile
        with run_lock(weights, "DeepFakeClassifier_tf_efficientnet_lite0_222"):
            pass

        children = child_pids(first.pid)  # the trainer and tee
        os.kill(first.pid, signal.SIGTERM)
        first.wait(timeout=60)
        assert first.returncode == 128 + signal.SIGTERM
        wait_for(lambda: not any(is_alive(pid) for pid in children), 10, "the trainer and tee to exit")
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    text = console.read_text()
    assert "stopped by SIGTERM" in text and "--resume" in text
    assert "stopped by SIGTERM" in (tmp_path / "logs" / "tiny_111.log").read_text()  # the trainer's last words
    assert not any(p.name.startswith(".tmp") for p in weights.iterdir())
    last_epoch = read_checkpoint(weights / f"{NAME}_last")["epoch"]
    resumed = subprocess.run([command[0], "--resume", *command[1:]], cwd=tmp_path, capture_output=True, text=True,
                             env=dict(env, TRAIN_ARGS="--stop-after 1"), timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert f"after epoch {last_epoch}" in resumed.stdout and f'"epochs_run": [{last_epoch + 1}]' in resumed.stdout


# ---- a full disk ----------------------------------------------------------------------------------------


@contextmanager
def small_disk(folder: Path, size_bytes: int):
    """A tmpfs of ``size_bytes`` mounted on ``folder``: writes past it fail with a real ENOSPC. Skips the
    test where mounting is not permitted."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()})")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)]).returncode != 0:
            # a file still open on it (the test failed): detached now, gone when it is closed
            subprocess.run(["umount", "--lazy", str(folder)], check=True)


def test_a_checkpoint_save_on_a_full_disk_says_so_and_leaves_no_partial_file(tmp_path):
    from models.classifier2d import DeepFakeClassifier

    model = DeepFakeClassifier("tf_efficientnet_lite0")
    with small_disk(tmp_path / "disk", 64 * 1024) as disk:
        target = disk / f"{NAME}_0"
        with pytest.raises(CheckpointSaveError) as failed:
            save_checkpoint(target, model, {"encoder": "tf_efficientnet_lite0"}, epoch=0)
        message = str(failed.value)
        assert f"cannot save checkpoint {target}: no space left" in message, message
        assert "MB free" in message and "keep_checkpoints" in message and "--resume" in message
        assert list(disk.iterdir()) == []  # the temp file of the failed write is gone


def test_training_onto_a_full_disk_stops_with_a_message_naming_the_file(preprocessed_root, tmp_path, capsys):
    argv = ["--data-dir", str(preprocessed_root), "--log-dir", str(tmp_path / "logs"), "--no-progress",
            *[a for o in TINY + ["epochs=1"] for a in ("--set", o)]]
    assert main([*argv, "--output-dir", str(tmp_path / "roomy")]) == 0
    epoch_bytes = (tmp_path / "roomy" / f"{NAME}_0").stat().st_size
    capsys.readouterr()
    # room for the epoch file, not for its copy as _last
    with small_disk(tmp_path / "disk", epoch_bytes * 3 // 2) as disk:
        assert main([*argv, "--output-dir", str(disk)]) == 2
        err = capsys.readouterr().err
        assert f"cannot save checkpoint {disk / f'{NAME}_last'}: no space left" in err, err
        assert "Traceback" not in err
        assert not any(p.name.startswith(".tmp") for p in disk.iterdir())
        assert (disk / f"{NAME}_0").stat().st_size == epoch_bytes  # what was saved before is intact


def test_a_sigterm_between_an_epoch_file_and_its_last_copy_still_leaves_a_resumable_run(
        preprocessed_root, tmp_path, monkeypatch):
    """A real SIGTERM to the trainer right after it wrote <name>_0, before the copy to _last: the copy and
    the rest of the epoch's writes finish first, so --resume continues instead of refusing an epoch file
    newer than _last."""
    from core.run_control import Stopped, stop_on_sigterm
    from training import hooks

    copy = hooks.copy_atomic

    def signalled_copy(src, dst):
        os.kill(os.getpid(), signal.SIGTERM)
        copy(src, dst)

    weights = tmp_path / "weights"
    monkeypatch.setattr(hooks, "copy_atomic", signalled_copy)
    with stop_on_sigterm(), pytest.raises(Stopped):
        train(_options(preprocessed_root, weights, "epochs=2"))
    monkeypatch.setattr(hooks, "copy_atomic", copy)
    assert read_checkpoint(weights / f"{NAME}_last")["epoch"] == 0
    resumed = train(_options(preprocessed_root, weights, "epochs=2", resume=str(weights / f"{NAME}_last")))
    assert resumed.epochs_run == [1]
