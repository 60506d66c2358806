"""The evaluation protocol: every metric is scikit-learn's, the breakdowns per folder and per method."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, log_loss, roc_auc_score, roc_curve

from core import metrics
from prediction import cli, outputs
from prediction.evaluation import ScoredVideo, evaluate, format_table
from tests.prediction.conftest import FRAMES_PER_VIDEO


def _labelled_numbers(seed: int, n: int = 200):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, n), 0, 1)  # informative, with ties at 0 and 1
    return y, p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_metric_equals_scikit_learn(seed):
    y, p = _labelled_numbers(seed)
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    scores = metrics.video_scores(y, p)
    assert scores["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert scores["average_precision"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert scores["log_loss"] == pytest.approx(log_loss(y, clipped), abs=1e-12)
    assert scores["fake_log_loss"] == pytest.approx(log_loss(y[y == 1], clipped[y == 1], labels=[0, 1]), abs=1e-12)
    assert scores["real_log_loss"] == pytest.approx(log_loss(y[y == 0], clipped[y == 0], labels=[0, 1]), abs=1e-12)
    assert scores["balanced_log_loss"] == pytest.approx((scores["fake_log_loss"] + scores["real_log_loss"]) / 2)
    assert scores["accuracy"] == pytest.approx(accuracy_score(y, p > 0.5), abs=1e-12)
    # EER: at the ROC point where false positive and false negative rates are closest, their mean;
    # checked against a sweep over every threshold computed by hand
    fpr, tpr, _ = roc_curve(y, p)
    gaps = np.abs((1 - tpr) - fpr)
    assert scores["eer"] == pytest.approx(((fpr + 1 - tpr) / 2)[np.argmin(gaps)], abs=1e-12)
    best = min((abs(np.mean(p[y == 0] >= t) - np.mean(p[y == 1] < t)), t) for t in np.unique(p))[1]
    assert scores["eer"] == pytest.approx((np.mean(p[y == 0] >= best) + np.mean(p[y == 1] < best)) / 2, abs=0.02)
    assert 0 < scores["eer"] < 0.5


def test_metrics_of_one_class_are_nan_not_an_error():
    scores = metrics.video_scores([1, 1, 1], [0.9, 0.2, 0.7])
    assert np.isnan(scores["auc"]) and np.isnan(scores["average_precision"]) and np.isnan(scores["eer"])
    assert np.isnan(scores["real_log_loss"]) and scores["fake_log_loss"] == pytest.approx(
        log_loss([1, 1, 1], [0.9, 0.2, 0.7], labels=[0, 1]))


def test_evaluate_breaks_down_per_folder_and_per_method():
    rng = np.random.default_rng(0)
    videos = []
    for folder, methods in (("ffpp", ("DF", "NT")), ("dfdc", (None,))):
        for i in range(12):
            videos.append(ScoredVideo(f"{i:03d}.mp4", folder, 0, float(rng.uniform(0, 0.7)), rng.uniform(0, 1, 5)))
            for m in methods:
                videos.append(ScoredVideo(f"{i:03d}_x_{m}.mp4", folder, 1, float(rng.uniform(0.3, 1)),
                                          rng.uniform(0, 1, 5), m))
    result = evaluate(videos)
    assert set(result["per_folder"]) == {"ffpp", "dfdc"}
    assert set(result["per_method"]) == {"DF", "NT"}
    df = [v for v in videos if v.folder == "ffpp" and (v.label == 0 or v.method == "DF")]
    assert result["per_method"]["DF"]["n_videos"] == 24 and result["per_method"]["DF"]["n_fake"] == 12
    assert result["per_method"]["DF"]["auc"] == pytest.approx(roc_auc_score([v.label for v in df],
                                                                            [v.probability for v in df]))
    face_y = np.repeat([v.label for v in videos], 5)
    face_p = np.concatenate([v.face_scores for v in videos])
    assert result["overall"]["face_auc"] == pytest.approx(roc_auc_score(face_y, face_p))
    table = format_table(result)
    assert "| folder dfdc |" in table and "| method NT (NeuralTextures) |" in table
    assert len(table.splitlines()) == 2 + 1 + 2 + 2 + 1  # header, rows, how the intervals were made


def test_every_row_has_intervals_and_its_counts_or_n_too_small():
    rng = np.random.default_rng(1)
    videos = [ScoredVideo(f"r{i}.mp4", "ffpp", 0, float(rng.uniform(0, 0.7)), rng.uniform(0, 1, 4)) for i in range(15)]
    videos += [ScoredVideo(f"f{i}_DF.mp4", "ffpp", 1, float(rng.uniform(0.3, 1)), rng.uniform(0, 1, 4), "DF")
               for i in range(15)]
    # a second folder with one real video: its row and its method's row cannot have intervals
    videos += [ScoredVideo("lone_real.mp4", "dfdc", 0, 0.3, rng.uniform(0, 1, 4)),
               ScoredVideo("a_NT.mp4", "dfdc", 1, 0.8, rng.uniform(0, 1, 4), "NT"),
               ScoredVideo("b_NT.mp4", "dfdc", 1, 0.6, rng.uniform(0, 1, 4), "NT")]
    result = evaluate(videos, metrics.Bootstrap(resamples=300, seed=4))
    assert result["bootstrap"]["resamples"] == 300 and result["bootstrap"]["seed"] == 4
    rows = {"all": result["overall"], "folder ffpp": result["per_folder"]["ffpp"],
            "method DF (Deepfakes)": result["per_method"]["DF"]}
    for name, row in rows.items():
        assert set(row["ci"]) == {"auc", "average_precision", "log_loss", "fake_log_loss", "real_log_loss",
                                  "balanced_log_loss", "face_auc"}, name
        for key, (low, high) in row["ci"].items():
            assert low <= row[key] <= high, (name, key)
    assert result["per_folder"]["dfdc"]["ci"] is None and result["per_method"]["NT"]["ci"] is None
    table = {line.split(" | ")[0].strip("| "): line for line in format_table(result).splitlines()}
    auc_low, auc_high = result["overall"]["ci"]["auc"]
    assert f"| 33 | 17 | 16 | {result['overall']['auc']:.3f} [{auc_low:.3f}, {auc_high:.3f}] |" in table["all"]
    assert table["folder dfdc"].startswith("| folder dfdc | 3 | 2 | 1 | ")
    assert "(n too small)" in table["folder dfdc"] and "(n too small)" in table["method NT (NeuralTextures)"]
    assert "[" not in table["folder dfdc"] and "n too small" not in table["all"]
    # without resamples: no interval anywhere
    bare = evaluate(videos, metrics.Bootstrap(resamples=0))
    assert "ci" not in bare["overall"] and "[" not in format_table(bare).split("\n", 2)[2]


def test_methods_in_folders_of_their_own_meet_their_datasets_reals_and_datasets_get_rows():
    # FF++ as it ships: reals in one folder, each method in another; a DFDC folder beside it
    videos = [ScoredVideo(f"{i}.mp4", "youtube/c23/videos", 0, 0.2 + 0.05 * i, dataset="ffpp") for i in range(4)]
    videos += [ScoredVideo(f"{i}_x.mp4", "Deepfakes/c23/videos", 1, 0.3 + 0.1 * i, method="DF", dataset="ffpp")
               for i in range(4)]
    videos += [ScoredVideo("a.mp4", "dfdc", 0, 0.9, dataset="dfdc"), ScoredVideo("b.mp4", "dfdc", 1, 0.1, method="DF",
                                                                                dataset="dfdc")]
    result = evaluate(videos)
    # DF: its fakes, the reals of the dfdc folder (which holds reals) and FF++'s reals (its folder holds none)
    assert (result["per_method"]["DF"]["n_real"], result["per_method"]["DF"]["n_fake"]) == (5, 5)
    assert set(result["per_dataset"]) == {"ffpp", "dfdc"} and result["per_dataset"]["ffpp"]["n_videos"] == 8
    assert result["per_dataset"]["ffpp"]["auc"] == pytest.approx(roc_auc_score(
        [v.label for v in videos[:8]], [v.probability for v in videos[:8]]))
    # a dataset's row has its intervals as the other rows do (none with a single video per class)
    ffpp = result["per_dataset"]["ffpp"]
    low, high = ffpp["ci"]["auc"]
    assert low <= ffpp["auc"] <= high and result["per_dataset"]["dfdc"]["ci"] is None
    table = {line.split(" | ")[0].strip("| "): line for line in format_table(result).splitlines()}
    assert f"{ffpp['auc']:.3f} [{low:.3f}, {high:.3f}]" in table["dataset ffpp"]
    assert "(n too small)" in table["dataset dfdc"]
    assert evaluate(videos[:8])["per_dataset"] == {}  # one dataset: no breakdown


def test_several_folders_in_one_call_give_one_table(test_videos, project_checkpoint, tmp_path, capsys):
    # two datasets whose folders have the same name and hold the same file names: rows stay distinct
    names = sorted(p.name for p in test_videos.glob("*.mp4"))
    metadata = json.loads((test_videos / "metadata.json").read_text())
    folders = []
    for dataset in ("set_a", "set_b"):
        folder = tmp_path / dataset / "videos"
        folder.mkdir(parents=True)
        for name in names:
            shutil.copy(test_videos / name, folder / name)
        (folder / "metadata.json").write_text(json.dumps({n: metadata[n] for n in names}))
        folders.append(str(folder))
    output = tmp_path / "out.csv"
    report = tmp_path / "report"
    rc = cli.main(["--test-dir", *folders, "--models", str(project_checkpoint), "--output", str(output),
                              "--frames-per-video", str(FRAMES_PER_VIDEO), "--report", str(report),
                              "--no-progress"])
    assert rc == 0
    rows = output.read_text().splitlines()[1:]
    assert sorted(r.split(",")[0] for r in rows) == sorted(f"{d}/videos/{n}" for d in ("set_a", "set_b")
                                                             for n in names)
    summary = json.loads(outputs.metrics_path_for(output).read_text())
    per_folder = summary["evaluation"]["per_folder"]
    assert set(per_folder) == {"set_a/videos", "set_b/videos"}
    assert all(s["n_videos"] == len(names) for s in per_folder.values())
    assert summary["evaluation"]["overall"]["n_videos"] == 2 * len(names) == summary["n_labelled"]
    # the same videos scored twice the same way
    assert per_folder["set_a/videos"]["log_loss"] == pytest.approx(per_folder["set_b/videos"]["log_loss"], abs=1e-9)
    printed = capsys.readouterr().out
    assert "| folder set_a/videos |" in printed and "| folder set_b/videos |" in printed
    page = (report / "index.html").read_text()
    assert "<h2>Evaluation</h2>" in page and re.search(r"<th>folder set_b/videos</th>", page)

    rc = cli.main(["--test-dir", *folders, "--models", str(project_checkpoint), "--output",
                              str(tmp_path / "again.csv"), "--labels", str(tmp_path / "set_a/videos/metadata.json")])
    assert rc == 2
    assert "with several --test-dir folders" in capsys.readouterr().err


def test_a_faceless_fake_leaves_the_face_auc_interval_to_the_resamples_that_define_it(recwarn):
    # a fallback fake has no face: resamples that draw only it have no face AUC and are left out
    videos = [ScoredVideo("fallback.mp4", "f", 1, 0.5), ScoredVideo("b.mp4", "f", 1, 0.7, np.array([0.6, 0.8])),
              ScoredVideo("c.mp4", "f", 0, 0.2, np.array([0.1])), ScoredVideo("d.mp4", "f", 0, 0.4, np.array([0.3]))]
    result = evaluate(videos)
    assert result["overall"]["face_auc"] == 1.0 and result["overall"]["ci"]["face_auc"] == [1.0, 1.0]
    assert not [w for w in recwarn if "confidence interval" in str(w.message)]
