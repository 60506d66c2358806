"""The report and the metrics file of a real run: confidence intervals with their counts, and the
reliability diagram of the labelled videos."""

from __future__ import annotations

import csv
import json
import re

import cv2
import numpy as np
import pytest

from core.metrics import Bootstrap, bootstrap_intervals, reliability_bins, video_score_statistics
from prediction import cli, outputs
from prediction.evaluation import INTERVAL_METRICS
from tests.prediction.conftest import FRAMES_PER_VIDEO


def _run(test_videos, checkpoint, tmp_path, *extra: str):
    output = tmp_path / "out.csv"
    report = tmp_path / "report"
    rc = cli.main(["--test-dir", str(test_videos), "--models", str(checkpoint), "--output", str(output),
                   "--frames-per-video", str(FRAMES_PER_VIDEO), "--report", str(report), "--no-progress", *extra])
    assert rc == 0
    with output.open(newline="") as handle:
        scores = {name: float(value) for name, value in list(csv.reader(handle))[1:]}
    return json.loads(outputs.metrics_path_for(output).read_text()), (report / "index.html").read_text(), scores


def _bins_table(page: str) -> list[list[str]]:
    section = page[page.index("<h2>Reliability</h2>"):page.index("<h2>Highest log loss</h2>")]
    return [re.findall(r"<td>([^<]*)</td>", row) for row in re.findall(r"<tr><td>.*?</tr>", section)]


def test_every_auc_ap_and_log_loss_has_its_interval_and_count(test_videos, project_checkpoint, tmp_path, capsys):
    metrics, page, scores = _run(test_videos, project_checkpoint, tmp_path)
    labels = {name: int(info["label"] == "FAKE")
              for name, info in json.loads((test_videos / "metadata.json").read_text()).items()}
    names = sorted(scores)
    y, p = [labels[n] for n in names], [scores[n] for n in names]
    assert metrics["n_fake"] >= 2 and metrics["n_real"] >= 2  # enough of each class for an interval

    # the metrics file: every AUC, AP and log loss with an interval around it, made as recorded
    assert set(metrics["ci"]) == set(INTERVAL_METRICS)
    for key in INTERVAL_METRICS:
        low, high = metrics["ci"][key]
        assert low <= metrics[key] <= high, key
    assert metrics["evaluation"]["bootstrap"] == Bootstrap().record()
    expected = bootstrap_intervals(y, video_score_statistics(y, p), Bootstrap())
    for key, interval in expected.items():  # the run's numbers resampled as the record says
        assert metrics["ci"][key] == pytest.approx(interval, abs=1e-9), key

    # the printed line and table
    out = capsys.readouterr().out
    auc_low, auc_high = metrics["ci"]["auc"]
    assert f"AUC {metrics['auc']:.4f} [{auc_low:.3f}, {auc_high:.3f}]" in out
    assert f"({len(names)} labelled videos, {sum(y)} fake;" in out
    assert f"| all | {len(names)} | {sum(y)} | {len(names) - sum(y)} | {metrics['auc']:.3f} [{auc_low:.3f}" in out

    # the report: the evaluation table and the scores, each with its interval and the count it stands on
    assert f"<td>{metrics['auc']:.3f} [{auc_low:.3f}, {auc_high:.3f}]</td>" in page
    assert (f"<tr><th>auc</th><td>{metrics['auc']:.4f} [{auc_low:.3f}, {auc_high:.3f}]</td>"
            f"<td>{len(names)} videos ({sum(y)} fake)</td></tr>") in page
    fake_low, fake_high = metrics["ci"]["fake_log_loss"]
    assert (f"<tr><th>fake_log_loss</th><td>{metrics['fake_log_loss']:.4f} [{fake_low:.3f}, {fake_high:.3f}]"
            f"</td><td>{sum(y)} fake videos</td></tr>") in page
    assert "1000 bootstrap resamples of the videos stratified by label (seed 0)" in page

    # the reliability diagram: the labelled videos in bins, each bin's count and fractions
    bins = reliability_bins(y, p)
    assert metrics["evaluation"]["reliability"] == bins
    table = _bins_table(page)
    assert [int(row[1]) for row in table] == [b["n_videos"] for b in bins]
    assert sum(int(row[1]) for row in table) == len(names)
    for row, b in zip(table, bins):
        if b["n_videos"]:
            assert float(row[2]) == pytest.approx(b["mean_prediction"], abs=5e-4)
            assert float(row[3]) == pytest.approx(np.mean([yi for yi, pi in zip(y, p)
                                                           if b["low"] < pi <= b["high"] or (b["low"] == 0 and pi == 0)]),
                                                  abs=5e-4)
    image = cv2.imread(str(tmp_path / "report" / "reliability.png"))
    assert image is not None and image.shape[0] > 300 and image.shape[1] > 300
    assert 'src="reliability.png"' in page


def test_the_seed_given_makes_the_intervals_and_one_real_is_n_too_small(test_videos, project_checkpoint, tmp_path):
    first, _, scores = _run(test_videos, project_checkpoint, tmp_path / "a", "--bootstrap", "50")
    labels = {name: int(info["label"] == "FAKE")
              for name, info in json.loads((test_videos / "metadata.json").read_text()).items()}
    y, p = [labels[n] for n in sorted(scores)], [scores[n] for n in sorted(scores)]
    # 4 videos give few distinct resamples: find a seed whose intervals differ from seed 0's
    by_seed = {seed: bootstrap_intervals(y, video_score_statistics(y, p), Bootstrap(resamples=50, seed=seed))
               for seed in range(30)}
    other = next(seed for seed in range(1, 30) if by_seed[seed] != by_seed[0])
    second, _, _ = _run(test_videos, project_checkpoint, tmp_path / "b", "--bootstrap", "50",
                        "--bootstrap-seed", str(other))
    assert first["evaluation"]["bootstrap"]["resamples"] == 50 and first["evaluation"]["bootstrap"]["seed"] == 0
    assert second["evaluation"]["bootstrap"]["seed"] == other
    for run, seed in ((first, 0), (second, other)):
        for key, interval in by_seed[seed].items():
            assert run["ci"][key] == pytest.approx(interval, abs=1e-9), (seed, key)
    assert first["ci"] != second["ci"]

    # labels that leave one real video: no interval, "n too small" in the table and the report
    names = sorted(scores)
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text("filename,label\n" + "".join(f"{n},{0 if i == 0 else 1}\n" for i, n in enumerate(names)))
    lone, page, _ = _run(test_videos, project_checkpoint, tmp_path / "c", "--labels", str(labels_csv))
    assert lone["ci"] is None and lone["n_real"] == 1
    evaluation = page[page.index("<h2>Evaluation</h2>"):page.index("<h2>All videos")]
    assert "(n too small)" in evaluation and not re.search(r"\[\d\.\d{3}, ", evaluation)
