"""No function of the project's code is longer than 80 lines (the developer guide's limit).

A function's length is counted from its first decorator (or its ``def`` line when it has none) to its
last line, so the signature, the docstring, comments and blank lines inside it all count; a nested
function counts on its own and as part of the function around it. Checked: every ``.py`` file of the
project's packages (the folders with an ``__init__.py``) and the top-level scripts; not ``tests/`` and
``bench/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 80
NOT_CHECKED = {"tests", "bench"}

# Functions allowed to stay longer while they are being rewritten ("path::qualified name"). Each entry
# says why; an entry whose function is gone or short again fails the test, so that the list only shrinks.
ALLOWED_LONG: set[str] = set()


def project_files(root: Path = REPO_ROOT) -> list[Path]:
    """The top-level scripts and every ``.py`` file under a top-level package."""
    files = sorted(root.glob("*.py"))
    for package in sorted(p for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()):
        if package.name not in NOT_CHECKED:
            files += sorted(package.rglob("*.py"))
    return files


def function_lengths(source: str) -> dict[str, int]:
    """{qualified name (``Class.method``, ``outer.inner``): lines from the first decorator to the end}."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    lengths[name] = child.end_lineno - first + 1
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return lengths


def long_functions(root: Path = REPO_ROOT) -> dict[str, int]:
    """{"path::qualified name": lines} of every function over ``MAX_FUNCTION_LINES``."""
    found = {}
    for path in project_files(root):
        for name, n_lines in function_lengths(path.read_text(encoding="utf-8")).items():
            if n_lines > MAX_FUNCTION_LINES:
                found[f"{path.relative_to(root).as_posix()}::{name}"] = n_lines
    return found


def test_the_count_takes_decorators_docstrings_and_nested_functions(tmp_path):
    source = "\n".join(["class Worker:", "    @staticmethod", "    @property", "    def run():",
                        '        """Doc."""', "", "        def step():", "            return 1",
                        "", "        return step()", "", "def short(): return 0"])
    assert function_lengths(source) == {"Worker.run": 9, "Worker.run.step": 2, "short": 1}
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "long.py").write_text("def long():\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    (tmp_path / "tests" / "test_x.py").write_text("def test_long():\n" + "    x = 1\n" * 100)
    (tmp_path / "script.py").write_text("def fits():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES - 1))
    assert long_functions(tmp_path) == {"pkg/long.py::long": MAX_FUNCTION_LINES + 1}


def test_no_function_is_longer_than_80_lines():
    found = long_functions()
    too_long = {name: n for name, n in found.items() if name not in ALLOWED_LONG}
    assert not too_long, (f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps):\n"
                          + "\n".join(f"  {name}: {n} lines" for name, n in sorted(too_long.items())))
    stale = sorted(ALLOWED_LONG - set(found))
    assert not stale, f"no longer over {MAX_FUNCTION_LINES} lines (or gone): remove from ALLOWED_LONG: {stale}"
