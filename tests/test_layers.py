"""The layers of the code hold: import-linter's contracts (pyproject.toml) and the thin top-level scripts."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "datasets", "models", "faces", "preprocessing", "training", "prediction", "sample_data")
TOP_LEVEL_SCRIPTS = ("kernel_utils", "predict_folder")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    command = Path(sys.executable).with_name("lint-imports")
    assert command.is_file(), f"{command} is missing: install the pinned requirements.txt (import-linter)"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(command), "--no-cache", "--no-logo"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_import_contracts_hold():
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_upward_and_sideways_imports_break_the_contracts(tmp_path):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    (tmp_path / "core" / "upward.py").write_text("from datasets import layout\n")
    (tmp_path / "training" / "sideways.py").write_text("import prediction.options\n")
    (tmp_path / "faces" / "to_the_top.py").write_text("import kernel_utils\n")
    (tmp_path / "preprocessing" / "needs_a_model.py").write_text("from models import checkpoints\n")
    done = _lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    for line in ("core.upward -> datasets.layout", "training.sideways -> prediction.options",
                 "faces.to_the_top -> kernel_utils", "preprocessing.needs_a_model -> models.checkpoints"):
        assert line in done.stdout, done.stdout


@pytest.mark.parametrize("script", TOP_LEVEL_SCRIPTS)
def test_top_level_scripts_are_names_over_prediction(script):
    """import-linter takes packages only, so what the two top-level modules import is checked here."""
    tree = ast.parse((REPO / f"{script}.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    project = {m for m in imported if m.split(".")[0] in PACKAGES + TOP_LEVEL_SCRIPTS}
    assert project, f"{script}.py imports nothing of the project"
    assert {m.split(".")[0] for m in project} == {"prediction"}, project


def test_kernel_utils_keeps_its_names():
    import kernel_utils
    from prediction import aggregation, predictor

    for name in kernel_utils.__all__:
        assert hasattr(kernel_utils, name), name
    assert kernel_utils.VideoPredictor is predictor.VideoPredictor
    assert kernel_utils.confident_strategy is aggregation.confident_strategy
