"""predict_folder.py / predict_submission.sh: rows, scores, report, checkpoint discovery, exit codes."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from core import errors
from datasets.dfdc import read_labels
from models.checkpoints import save_checkpoint
from models.classifier2d import DeepFakeClassifier
from prediction import cli, outputs
from prediction.inputs import find_checkpoints
from tests.prediction.conftest import BAD_VIDEOS, FRAMES_PER_VIDEO

REPO_ROOT = Path(__file__).resolve().parents[2]


def _read_csv(path: Path) -> list[tuple[str, float]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["filename", "label"]
    return [(name, float(value)) for name, value in rows[1:]]


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, test_videos, bad_inputs) -> Path:
    """The generated test videos plus corrupt, zero-frame, face-less and text-as-mp4 files and non-videos."""
    folder = tmp_path_factory.mktemp("mixed") / "test_videos"
    shutil.copytree(test_videos, folder)
    for path in bad_inputs.values():
        shutil.copy(path, folder / path.name)
    return folder


def test_folder_rows_scores_and_report(mixed_folder, project_checkpoint, tmp_path, caplog):
    # labels for every video, the bad ones included, given as a CSV (the folder's metadata.json is ignored)
    metadata = json.loads((mixed_folder / "metadata.json").read_text())
    labels = {name: int(info["label"] == "FAKE") for name, info in metadata.items()}
    labels.update({"corrupt.mp4": 1, "zero_frames.mp4": 0, "faceless.mp4": 0, "text_named.mp4": 1})
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("filename,label\n" + "".join(f"{k},{v}\n" for k, v in sorted(labels.items())))
    output = tmp_path / "out" / "submission.csv"
    report = tmp_path / "report"

    rc = cli.main(["--test-dir", str(mixed_folder), "--models", str(project_checkpoint),
                              "--output", str(output), "--frames-per-video", str(FRAMES_PER_VIDEO),
                              "--labels", str(labels_csv), "--report", str(report), "--report-videos", "3"])
    assert rc == 0

    rows = _read_csv(output)
    mp4s = sorted(p.name for p in mixed_folder.iterdir() if p.suffix == ".mp4")
    assert [name for name, _ in rows] == mp4s  # every mp4, sorted; no row for .txt / .jpg / .json
    predictions = dict(rows)
    for name in BAD_VIDEOS:
        assert predictions[name] == 0.5
        assert any(name in r.getMessage() for r in caplog.records), f"no logged reason for {name}"
    assert all(0 <= p <= 1 for p in predictions.values())

    metrics = json.loads(outputs.metrics_path_for(output).read_text())
    assert metrics["fallbacks"] == {"total": 4, "unreadable": 3, "no_face": 1, "no_clip": 0, "error": 0}
    assert set(metrics["fallback_videos"]) == set(BAD_VIDEOS)
    assert metrics["n_labelled"] == len(mp4s) and metrics["n_unlabelled"] == 0
    y = [labels[name] for name, _ in rows]
    p = [prob for _, prob in rows]
    assert metrics["log_loss"] == pytest.approx(sk_log_loss(y, p), abs=1e-9)
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert metrics["accuracy"] == pytest.approx(np.mean((np.array(p) > 0.5) == np.array(y)))

    index = report / "index.html"
    page = index.read_text()
    targets = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert "histogram.png" in targets
    # every video (fallbacks included) has a row linking to its own page
    pages = [t for t in targets if t.startswith("videos/") and t.endswith(".html")]
    assert sorted(set(pages)) == sorted(f"videos/{Path(n).stem}.html" for n in mp4s)
    table = page[page.index('id="videos"'):page.index("</table>", page.index('id="videos"'))]
    assert [Path(t).stem for t in re.findall(r'href="(videos/[^"]+\.html)"', table)] == [Path(n).stem for n in mp4s]
    # the highest-log-loss list: the 3 labelled videos with faces and the largest log loss, in that order
    good = [n for n in mp4s if n not in BAD_VIDEOS]
    shown = sorted(good, key=lambda n: -sk_log_loss([labels[n]], [predictions[n]], labels=[0, 1]))[:3]
    assert len(good) > 3
    worst = page[page.index("<h2>Highest log loss</h2>"):page.index("<h2>Fallbacks")]
    assert [Path(t).stem for t in re.findall(r'<td><a href="(videos/[^"]+)\.html">(?!<img)', worst)] == \
        [Path(n).stem for n in shown]
    import cv2

    persons = json.loads(outputs.persons_path_for(output).read_text())
    for name in good:  # each video page: a contact sheet per person with that person's faces
        stem = Path(name).stem
        video_page = (report / "videos" / f"{stem}.html").read_text()
        assert f"{predictions[name]:.4f}" in video_page
        for person in persons[name]["persons"]:
            sheet = cv2.imread(str(report / "videos" / stem / f"person{person['person']}.png"))
            n = len(person["frames"])
            assert sheet.shape[:2] == (-(-n // 8) * 112, min(n, 8) * 112), name
    for html_file in [index, *(report / "videos").glob("*.html")]:  # every link of every page resolves
        for target in re.findall(r'(?:href|src)="([^"]+)"', html_file.read_text()):
            path = (html_file.parent / target).resolve()
            assert path.is_file() and path.stat().st_size > 0, (html_file.name, target)
    assert output.resolve() in {(report / t).resolve() for t in targets}
    for name in BAD_VIDEOS:
        assert name in page  # the fallbacks table


def test_winner_checkpoint_through_cli_on_one_video(test_videos, winner_checkpoint, tmp_path, capsys):
    video = sorted(test_videos.glob("*.mp4"))[0]
    output = tmp_path / "winner.csv"
    rc = cli.main(["--video", str(video), "--models", str(winner_checkpoint),
                              "--output", str(output), "--frames-per-video", "2", "--tta"])
    assert rc == 0
    rows = _read_csv(output)
    assert [n for n, _ in rows] == [video.name] and rows[0][1] != 0.5
    # scored with the metadata.json next to the video; one video, so AUC is undefined (null)
    metrics = json.loads((tmp_path / "winner.metrics.json").read_text())
    assert metrics["n_labelled"] == 1 and metrics["auc"] is None and metrics["settings"]["tta"] is True
    assert metrics["models"] == [str(winner_checkpoint)] and metrics["fallbacks"]["total"] == 0
    label = json.loads((test_videos / "metadata.json").read_text())[video.name]["label"] == "FAKE"
    assert metrics["log_loss"] == pytest.approx(sk_log_loss([int(label)], [rows[0][1]], labels=[0, 1]))
    out = capsys.readouterr().out
    assert f"log loss {metrics['log_loss']:.4f}" in out


def test_bad_input_exits_2_with_a_clear_message(tmp_path, project_checkpoint, test_videos, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no videos here")
    cases = [
        (["--test-dir", str(tmp_path / "missing")], "does not exist"),
        (["--test-dir", str(empty)], "holds no video file (.mp4 .mov .mkv .avi .webm .m4v, any case)"),
        (["--test-dir", str(test_videos), "--weights-dir", str(empty)], "no checkpoint"),
        (["--test-dir", str(test_videos), "--models", str(tmp_path / "nope_best")], "nope_best does not exist"),
        (["--test-dir", str(test_videos), "--bootstrap", "-1"], "--bootstrap -1: give the number of resamples"),
    ]
    # a checkpoint that does not fit: Lite0 weights whose config names another encoder
    wrong = tmp_path / "wrong_encoder_best"
    state = torch.load(project_checkpoint, map_location="cpu", weights_only=False)
    torch.save({"state_dict": state["state_dict"], "config": {"encoder": "tf_efficientnet_b0_ns", "size": 96}},
               wrong)
    cases.append((["--test-dir", str(test_videos), "--models", str(wrong)], "does not fit"))
    garbage = tmp_path / "garbage_best"
    garbage.write_text("not a checkpoint")
    cases.append((["--test-dir", str(test_videos), "--models", str(garbage)], "cannot be read"))
    for args, message in cases:
        output = tmp_path / "never.csv"
        assert cli.main(args + ["--output", str(output)]) == 2, args
        err = capsys.readouterr().err
        assert "error:" in err and message in err, (args, err)
        assert not output.exists()


def test_find_checkpoints_prefers_best_then_last(tmp_path):
    for name in ["a_0_best", "a_0_last", "a_0_3", "a_0_args.json", "b_1_last", "c_2_best.pth",
                 "events.out.tfevents.1_last", ".tmp123_best"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d_0_last").write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_checkpoints(tmp_path)]
    assert found == ["a_0_best", "b_1_last", "c_2_best.pth"]  # never a subfolder's (a backup in weights/old/)
    assert find_checkpoints(tmp_path / "none") == []


def test_predict_submission_sh_uses_train_sh_checkpoints(test_videos, tmp_path):
    """The shell entry point with default checkpoints (per run *_best, else *_last) from WEIGHTS_DIR."""
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(1)
    save_checkpoint(weights / "demo_tf_efficientnet_lite0_1_last", DeepFakeClassifier("tf_efficientnet_lite0"),
                    config={"encoder": "tf_efficientnet_lite0", "size": 64})
    (weights / "demo_tf_efficientnet_lite0_1_args.json").write_text("{}")
    output = tmp_path / "sub.csv"
    env = dict(os.environ, WEIGHTS_DIR=str(weights))
    script = str(REPO_ROOT / "predict_submission.sh")
    result = subprocess.run([script, str(test_videos), str(output), "--", "--frames-per-video", "2"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "demo_tf_efficientnet_lite0_1_last" in result.stderr
    assert [n for n, _ in _read_csv(output)] == sorted(p.name for p in test_videos.glob("*.mp4"))
    assert "log loss" in result.stdout

    missing = subprocess.run([script, str(tmp_path / "nowhere"), str(output)], env=env, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 2 and "nowhere" in missing.stderr
    usage = subprocess.run([script], env=env, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage" in usage.stderr


# ---- bad input found before any work; code errors are errors --------------------------------------------


def test_unwritable_output_is_refused_before_any_work(tmp_path, project_checkpoint, test_videos, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder is needed")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    (tmp_path / "taken.metrics.json").mkdir()
    (tmp_path / "people.persons.json").mkdir()
    (tmp_path / "heat.explain").write_text("a file where the heatmap folder goes")
    cases = [
        (["--output", str(tmp_path / "people.csv")], "people.persons.json is a folder"),
        (["--output", str(tmp_path / "heat.csv"), "--explain"], "heat.explain is a file"),
        (["--output", str(tmp_path / "ok.csv"), "--explain", "-1"], "--explain -1"),
        (["--output", str(folder)], f"--output {folder} is a folder"),
        (["--output", str(blocker / "sub" / "out.csv")], f"{blocker} is a file"),
        (["--output", str(tmp_path / "taken.csv")], "taken.metrics.json is a folder"),
        (["--output", str(tmp_path / "ok.csv"), "--report", str(blocker)], f"--report {blocker} is a file"),
    ]
    if os.geteuid() != 0:  # root ignores permission bits; the cases above hold for root too
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        cases.append((["--output", str(locked / "out.csv")], "cannot write"))
    for extra, message in cases:
        rc = cli.main(["--test-dir", str(test_videos), "--models", str(project_checkpoint),
                                  "--frames-per-video", "2", *extra])
        err = capsys.readouterr().err
        assert rc == 2, (extra, err)
        assert "error:" in err and message in err, (extra, err)
        assert "model(s)" not in err, "the check must come before the models are loaded"
    assert not (tmp_path / "ok.csv").exists()


def test_labels_that_match_no_video_warn(tmp_path, project_checkpoint, test_videos, capsys):
    video = sorted(test_videos.glob("*.mp4"))[0]
    other = tmp_path / "other.csv"
    other.write_text("filename,label\nnot_here.mp4,1\nnor_here.mp4,0\n")
    output = tmp_path / "out.csv"
    rc = cli.main(["--video", str(video), "--models", str(project_checkpoint), "--output", str(output),
                              "--frames-per-video", "2", "--labels", str(other), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "warning:" in captured.err and "names none of the 1 video" in captured.err and "not_here.mp4" in captured.err
    metrics = json.loads(outputs.metrics_path_for(output).read_text())
    assert "log_loss" not in metrics and [n for n, _ in _read_csv(output)] == [video.name]

    partial = tmp_path / "partial.csv"
    partial.write_text(f"filename,label\n{video.name},1\nnot_here.mp4,1\nnor_here.mp4,0\n")
    mp4s = sorted(test_videos.glob("*.mp4"))
    rc = cli.main(["--test-dir", str(test_videos), "--models", str(project_checkpoint), "--output",
                              str(tmp_path / "p.csv"), "--frames-per-video", "1", "--labels", str(partial),
                              "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0
    assert f"1 of {len(mp4s)} videos have a label" in err and "2 labels name no video" in err


def test_folder_given_as_a_file_and_file_as_a_folder(tmp_path, project_checkpoint, test_videos, capsys):
    video = sorted(test_videos.glob("*.mp4"))[0]
    cases = [
        (["--test-dir", str(test_videos), "--models", str(tmp_path)], f"checkpoint {tmp_path} is a folder"),
        (["--video", str(tmp_path), "--models", str(project_checkpoint)], f"--video {tmp_path} is a folder"),
        (["--test-dir", str(video), "--models", str(project_checkpoint)], f"--test-dir {video} is a file"),
        (["--test-dir", str(test_videos), "--models", str(project_checkpoint), "--labels", str(tmp_path)],
         f"labels file {tmp_path} is a folder"),
    ]
    for args, message in cases:
        assert cli.main(args + ["--output", str(tmp_path / "x.csv")]) == 2, args
        err = capsys.readouterr().err
        assert message in err, (args, err)


def test_no_progress_hides_the_bar(tmp_path, project_checkpoint, test_videos, capsys):
    video = sorted(test_videos.glob("*.mp4"))[0]
    argv = ["--video", str(video), "--models", str(project_checkpoint), "--frames-per-video", "1"]
    assert cli.main(argv + ["--output", str(tmp_path / "a.csv")]) == 0
    assert "predict:" in capsys.readouterr().err
    assert cli.main(argv + ["--output", str(tmp_path / "b.csv"), "--no-progress"]) == 0
    assert "predict:" not in capsys.readouterr().err


def _forward_failing_on(monkeypatch, calls: set[int]) -> None:
    """A bug in the model: its forward raises TypeError on the given calls (counted from 1)."""
    from models.classifier2d import DeepFakeClassifier

    original = DeepFakeClassifier.forward
    count = {"n": 0}

    def forward(self, x):
        count["n"] += 1
        if count["n"] in calls:
            raise TypeError("unsupported operand type(s) for +: 'Tensor' and 'NoneType'")
        return original(self, x)

    monkeypatch.setattr(DeepFakeClassifier, "forward", forward)


def test_a_bug_stops_the_run_with_exit_1_and_keeps_the_rows_done(mixed_folder, project_checkpoint, tmp_path,
                                                                monkeypatch, capsys, caplog):
    mp4s = sorted(p.name for p in mixed_folder.glob("*.mp4"))
    with_faces = [n for n in mp4s if n not in BAD_VIDEOS]
    _forward_failing_on(monkeypatch, {3})  # one classifier call per video here: the third video with faces
    output = tmp_path / "stopped.csv"
    # batch normalisation unfolded: folding checks the model with two calls of its own before any video; one
    # video in flight: the classifier calls come in the folder's order (with several in flight, the third call
    # may be another video's)
    argv = ["--test-dir", str(mixed_folder), "--models", str(project_checkpoint), "--frames-per-video", "2",
            "--no-progress", "--prefetch", "2", "--no-fold-batchnorm", "--videos-in-flight", "1"]
    rc = cli.main(argv + ["--output", str(output)])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "Traceback" in err and "TypeError: unsupported operand" in err
    failed = with_faces[2]
    assert failed in err
    done = mp4s[:mp4s.index(failed)]
    rows = _read_csv(output)
    assert [n for n, _ in rows] == done  # the rows done before the error, nothing invented for the rest
    assert all(p != 0.5 for n, p in rows if n not in BAD_VIDEOS)
    assert f"{len(done)} of {len(mp4s)}" in err

    # --keep-going: every video gets a row, the error is counted and the exit code is still 1
    _forward_failing_on(monkeypatch, {3})
    output = tmp_path / "kept.csv"
    rc = cli.main(argv + ["--output", str(output), "--keep-going"])
    captured = capsys.readouterr()
    assert rc == 1
    # the traceback is logged (stderr on the command line; pytest holds the log records)
    assert any(r.exc_info and r.exc_info[0] is TypeError and failed in r.getMessage() for r in caplog.records)
    rows = dict(_read_csv(output))
    assert sorted(rows) == mp4s and rows[failed] == 0.5
    metrics = json.loads(outputs.metrics_path_for(output).read_text())
    assert metrics["fallbacks"]["error"] == 1 and "TypeError" in metrics["fallback_videos"][failed]
    assert "1 video failed with an error" in captured.out + captured.err


def test_a_partly_decodable_video_is_scored_with_a_warning(tmp_path, project_checkpoint, test_videos, capsys,
                                                           caplog):
    from core.video import iter_frames
    from tests.conftest import write_truncated_video

    folder = tmp_path / "videos"
    folder.mkdir()
    source = sorted(test_videos.glob("*.mp4"))[0]
    frames = [frame for _, frame in iter_frames(source)]
    write_truncated_video(frames, folder / "cut.mp4", keep_frames=6)
    shutil.copy(source, folder / "whole.mp4")
    output = tmp_path / "out.csv"
    rc = cli.main(["--test-dir", str(folder), "--models", str(project_checkpoint), "--output", str(output),
                              "--frames-per-video", "4", "--no-progress"])
    assert rc == 0
    assert "partly decoded (scored on the frames that decode): 1 video(s): cut.mp4" in capsys.readouterr().err
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [w for w in warnings if f"cut.mp4: only 6 of the {len(frames)} frames" in w] and len(warnings) == 1
    metrics = json.loads(outputs.metrics_path_for(output).read_text())
    assert list(metrics["partly_decoded_videos"]) == ["cut.mp4"]
    assert metrics["fallbacks"]["total"] == 0  # scored on the frames that decode, not 0.5
    assert dict(_read_csv(output))["cut.mp4"] != 0.5


# ---- hostile and careless inputs ------------------------------------------------------------------------

# name -> (codec, pixel format): every container the predictor reads, in both cases of the extension
CONTAINERS = {"clip.mp4": ("libx264", "yuv420p"), "phone.MOV": ("libx264", "yuv420p"), "clip.mov": ("libx264", "yuv420p"),
              "clip.mkv": ("libx264", "yuv420p"), "clip.M4V": ("libx264", "yuv420p"), "clip.avi": ("mpeg4", "yuv420p"),
              "motion.AVI": ("mjpeg", "yuvj420p"), "clip.webm": ("libvpx-vp9", "yuv420p"),
              "vp8.WebM": ("libvpx", "yuv420p")}


def test_every_container_in_any_case_is_predicted_and_other_formats_are_counted(tmp_path, project_checkpoint,
                                                                                test_videos, capsys):
    from core.video import read_sampled_frames
    from tests.prediction.conftest import write_video

    folder = tmp_path / "phone_videos"
    folder.mkdir()
    _, frames = read_sampled_frames(sorted(test_videos.glob("*.mp4"))[0], 6)
    for name, (codec, pix_fmt) in CONTAINERS.items():
        write_video(folder / name, frames, codec=codec, pix_fmt=pix_fmt)
    write_video(folder / "old.flv", frames)  # a format left out on purpose
    write_video(folder / "older.FLV", frames)
    output = tmp_path / "out.csv"
    rc = cli.main(["--test-dir", str(folder), "--models", str(project_checkpoint), "--output", str(output),
                              "--frames-per-video", "2", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0, err
    rows = dict(_read_csv(output))
    assert sorted(rows) == sorted(CONTAINERS)
    assert all(p != 0.5 for p in rows.values()), rows  # each decoded and its face scored, no fallback
    # the same H.264 stream in mp4, mov, mkv and m4v decodes to the same frames: the same score
    assert len({rows[n] for n in ("clip.mp4", "phone.MOV", "clip.mov", "clip.mkv", "clip.M4V")}) == 1
    assert "warning:" in err and "2 file(s) skipped" in err and ".flv: 2" in err and "get no row" in err


def test_checkpoints_in_subfolders_do_not_join_the_ensemble(tmp_path, project_checkpoint, test_videos, capsys):
    weights = tmp_path / "weights"
    (weights / "old").mkdir(parents=True)
    shutil.copy(project_checkpoint, weights / project_checkpoint.name)
    torch.manual_seed(5)
    save_checkpoint(weights / "old" / "backup_tf_efficientnet_lite0_0_best", DeepFakeClassifier("tf_efficientnet_lite0"),
                    config={"encoder": "tf_efficientnet_lite0", "size": 64})
    video = sorted(test_videos.glob("*.mp4"))[0]
    output = tmp_path / "out.csv"
    rc = cli.main(["--video", str(video), "--weights-dir", str(weights), "--output", str(output),
                              "--frames-per-video", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0, err
    metrics = json.loads(outputs.metrics_path_for(output).read_text())
    assert metrics["models"] == [str(weights / project_checkpoint.name)]
    assert "1 model(s)" in err and f"1 checkpoint(s) in subfolders of {weights} are not used" in err
    assert str(weights / "old" / "backup_tf_efficientnet_lite0_0_best") in err

    empty = tmp_path / "only_subfolders"
    shutil.copytree(weights / "old", empty / "old")
    rc = cli.main(["--video", str(video), "--weights-dir", str(empty), "--output", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and f"no *_best or *_last file in {empty}" in err and "--models" in err


def test_a_bad_labels_entry_is_named_and_no_labels_predicts_anyway(tmp_path, project_checkpoint, test_videos, capsys):
    folder = shutil.copytree(test_videos, tmp_path / "videos")
    metadata = json.loads((folder / "metadata.json").read_text())
    bad_name = sorted(metadata)[1]
    metadata[bad_name] = {"label": "MAYBE"}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    argv = ["--test-dir", str(folder), "--models", str(project_checkpoint), "--frames-per-video", "1", "--no-progress"]
    assert cli.main(argv + ["--output", str(tmp_path / "never.csv")]) == 2
    err = capsys.readouterr().err
    assert f"labels file {folder / 'metadata.json'}, entry '{bad_name}'" in err and "'MAYBE'" in err
    assert "--no-labels" in err and not (tmp_path / "never.csv").exists()

    output = tmp_path / "out.csv"
    assert cli.main(argv + ["--output", str(output), "--no-labels"]) == 0
    assert [n for n, _ in _read_csv(output)] == sorted(metadata)
    assert "log_loss" not in json.loads(outputs.metrics_path_for(output).read_text())


def test_a_dfdc_test_folder_is_scored_from_its_labels_csv_and_split_or_dataset_mistakes_exit_2(
        tmp_path, project_checkpoint, test_videos, capsys):
    folder = tmp_path / "test"
    folder.mkdir()
    metadata = json.loads((test_videos / "metadata.json").read_text())
    names = sorted(metadata)[:3]
    for name in names:
        shutil.copy(test_videos / name, folder / name)
    (folder / "labels.csv").write_text("filename,label\n" + "".join(
        f"{n},{int(metadata[n]['label'] == 'FAKE')}\n" for n in names))
    argv = ["--test-dir", str(folder), "--models", str(project_checkpoint), "--frames-per-video", "1", "--no-progress"]
    output = tmp_path / "out.csv"
    assert cli.main(argv + ["--output", str(output)]) == 0
    summary = json.loads(outputs.metrics_path_for(output).read_text())
    assert summary["n_labelled"] == 3 and summary["settings"]["labels"] == str(folder / "labels.csv")

    assert cli.main(argv + ["--output", str(tmp_path / "x.csv"), "--split", "test"]) == 2
    assert "none of the 3 videos is in the official test split" in capsys.readouterr().err
    assert cli.main(argv + ["--output", str(tmp_path / "x.csv"), "--split", "test", "--no-labels"]) == 2
    assert "no reader knows these videos' labels" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv + ["--output", str(tmp_path / "x.csv"), "--dataset", "nope"])
    assert exit_info.value.code == 2 and "unknown dataset 'nope'; known:" in capsys.readouterr().err


def test_read_labels_names_the_bad_line_and_entry(tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text("filename,label\na.mp4,1\nb.mp4,0\na.mp4,0\n")
    with pytest.raises(errors.InputError, match=r"labels\.csv, line 4: a\.mp4 is labelled twice.*--no-labels"):
        read_labels(table)
    table.write_text("filename,label\na.mp4,1\n,0\n")
    with pytest.raises(errors.InputError, match=r"labels\.csv, line 3: has no file name"):
        read_labels(table)
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"a.mp4": {"label": "FAKE"}, "b.mp4": {"label": ["REAL"]}}))
    with pytest.raises(errors.InputError, match=r"metadata\.json, entry 'b\.mp4': b\.mp4 has the label"):
        read_labels(meta)
    meta.write_text(json.dumps(["a.mp4"]))
    with pytest.raises(errors.InputError, match="found a list.*--no-labels"):
        read_labels(meta)


HOSTILE_NAMES = ["...mp4", "..mp4", ".hidden.mp4", "=HYPERLINK(1).mp4", "+1.mp4", "-2.mp4", "@SUM(1).mp4", "a b.mp4",
                 "a_b.mp4", "A_B.mp4", "x.mp4", "x.html.mp4", "back\\slash.mp4", "v" * 240 + ".mp4"]


def test_hostile_names_stay_in_the_report_and_do_not_run_in_a_spreadsheet(tmp_path, project_checkpoint, test_videos,
                                                                         capsys):
    import pandas as pd

    folder = tmp_path / "videos"
    folder.mkdir()
    source = sorted(test_videos.glob("*.mp4"))[0]
    for name in HOSTILE_NAMES:
        shutil.copy(source, folder / name)
    outside = tmp_path / "outside"
    outside.mkdir()
    report = tmp_path / "work" / "report"
    (report / "videos").mkdir(parents=True)
    (report / "videos" / "x").symlink_to(outside)  # left there by someone: a page must not write through it
    output = tmp_path / "work" / "out.csv"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "work" not in p.parts)
    rc = cli.main(["--test-dir", str(folder), "--models", str(project_checkpoint), "--output", str(output),
                              "--frames-per-video", "1", "--no-progress", "--report", str(report)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "work" not in p.parts) == before
    assert not any(outside.iterdir())
    pages = sorted(p.name for p in (report / "videos").glob("*.html"))
    assert len(pages) == len(HOSTILE_NAMES)  # one page each; names that slug alike do not share one
    assert len({p.lower() for p in pages}) == len(pages) and not any(p.startswith(".") for p in pages)
    for path in report.rglob("*"):  # everything written resolves inside the report folder
        if not path.is_symlink():
            assert path.resolve().is_relative_to(report.resolve()), path

    cells = pd.read_csv(output, dtype=str)["filename"].tolist()
    dangerous = {n for n in HOSTILE_NAMES if n[0] in "=+-@"}
    assert sorted(cells) == sorted(f"'{n}" if n in dangerous else n for n in HOSTILE_NAMES)
    assert f"{len(dangerous)} video name(s) start like a spreadsheet formula" in captured.err


@pytest.fixture
def full_disk(tmp_path):
    """A real file system with no space left: a 64 KiB tmpfs, filled. Needs root (skips elsewhere)."""
    mount_point = tmp_path / "full_disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        with pytest.raises(OSError, match="No space left"), open(mount_point / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_keeps_the_predictions_in_a_recovery_file(tmp_path, full_disk, project_checkpoint, test_videos,
                                                              monkeypatch, capsys):
    import tempfile

    recovery = tmp_path / "recovery"
    recovery.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(recovery))
    output = full_disk / "out.csv"
    argv = ["--test-dir", str(test_videos), "--models", str(project_checkpoint), "--frames-per-video", "1",
            "--no-progress"]
    rc = cli.main(argv + ["--output", str(output)])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_WRITE_FAILED, err
    saved = list(recovery.glob("out.recovered-*.csv"))
    assert len(saved) == 1 and f"are saved in the recovery file {saved[0]}" in err
    assert f"{output}: No space left on device" in err and "--keep-going" not in err and "Traceback" not in err
    rows = _read_csv(saved[0])
    assert [n for n, _ in rows] == sorted(p.name for p in test_videos.glob("*.mp4"))
    assert all(p != 0.5 for _, p in rows)
    assert not output.exists()

    # no place takes them (the temp and home folders on the full disk too): they are printed on stdout
    monkeypatch.setattr(tempfile, "tempdir", str(full_disk))
    monkeypatch.setenv("HOME", str(full_disk))
    rc = cli.main(argv + ["--output", str(output)])
    captured = capsys.readouterr()
    assert rc == cli.EXIT_WRITE_FAILED
    assert "printed above on stdout" in captured.err and "--keep-going" not in captured.err
    printed = list(csv.reader(captured.out[captured.out.index("filename,label"):].splitlines()))
    assert [name for name, _ in printed[1:]] == [n for n, _ in rows]


def test_a_full_disk_under_the_report_keeps_the_rows_done(tmp_path, full_disk, project_checkpoint, test_videos,
                                                          capsys):
    output = tmp_path / "out.csv"
    rc = cli.main(["--test-dir", str(test_videos), "--models", str(project_checkpoint), "--output",
                              str(output), "--frames-per-video", "1", "--no-progress", "--report",
                              str(full_disk / "report")])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_WRITE_FAILED, err
    first = sorted(p.name for p in test_videos.glob("*.mp4"))[0]
    assert f"the report files of {first} could not be written (No space left on device)" in err
    assert f"the 1 of {len(list(test_videos.glob('*.mp4')))} rows done are in {output}" in err
    assert [n for n, _ in _read_csv(output)] == [first] and "--keep-going" not in err


def test_a_malicious_checkpoint_is_refused_as_unsafe_without_running(tmp_path, test_videos, capsys):
    marker = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    checkpoint = tmp_path / "shared_by_a_stranger_best"
    torch.save({"state_dict": {"w": torch.ones(1)}, "config": {"encoder": "tf_efficientnet_lite0"}, "x": Payload()},
               checkpoint)
    rc = cli.main(["--test-dir", str(test_videos), "--models", str(checkpoint),
                              "--output", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"checkpoint {checkpoint} was refused as unsafe" in err and "unsupported GLOBAL posix.system" in err
    assert "weights_only" not in err and "convert-trusted" not in err
    assert not marker.exists()
