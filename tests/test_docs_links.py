"""The README and docs/ stay whole: every relative link and #anchor reaches a file and a heading that
exist (GitHub's anchor rules), and every command, path and Python name they give is in the code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "datasets", "models", "faces", "preprocessing", "training", "prediction", "sample_data")
TOP_LEVEL_MODULES = ("kernel_utils", "predict_folder")
# top-level folders whose files the docs name by path (`bench/quality.py`, `configs/b7.json`)
CODE_FOLDERS = PACKAGES + ("bench", "configs", "scripts", "tests", "docs", ".ci")
README_MAX_LINES = 300

FENCE = re.compile(r"^ {0,3}(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
# a code span: backticks, then text that does not cross a blank line, then as many backticks
CODE_SPAN = re.compile(r"(`+)((?:[^`\n]|\n(?!\n)|`(?!\1))+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
SCHEME = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")


def markdown_files(root: Path) -> list[Path]:
    """The README and every page under docs/."""
    readme = [root / "README.md"] if (root / "README.md").is_file() else []
    return readme + sorted((root / "docs").rglob("*.md"))


def split_fences(text: str) -> tuple[str, str]:
    """(prose, code): the text outside fenced code blocks and the text inside them, line for line."""
    prose, code, fenced = [], [], False
    for line in text.split("\n"):
        is_fence = bool(FENCE.match(line))
        inside = fenced or is_fence
        prose.append("" if inside else line)
        code.append(line if inside and not is_fence else "")
        fenced = fenced != is_fence
    return "\n".join(prose), "\n".join(code)


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, each space a dash."""
    text = re.sub(r"<[^>]+>", "", heading.strip().lower())
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors_of(text: str) -> set[str]:
    """Every #anchor of a page: its headings (a repeated one gets -1, -2, ... as on GitHub) and HTML ids."""
    prose, _ = split_fences(text)
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose.split("\n"):
        match = HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        seen = counts.get(anchor, 0)
        counts[anchor] = seen + 1
        found.add(anchor if seen == 0 else f"{anchor}-{seen}")
    return found | set(HTML_ANCHOR.findall(prose))


def link_targets(text: str) -> list[str]:
    """The targets of the page's links and images, leaving out those shown as code."""
    prose, _ = split_fences(text)
    spans = [match.span() for match in CODE_SPAN.finditer(prose)]
    return [match.group(1) for match in LINK.finditer(prose)
            if not any(start <= match.start() < end for start, end in spans)]


def broken_link(page: Path, target: str, root: Path) -> str | None:
    """Why the link ``target`` on ``page`` leads nowhere, or None when it resolves."""
    if SCHEME.match(target):
        return None
    path_part, _, anchor = target.partition("#")
    destination = (page.parent / unquote(path_part)).resolve() if path_part else page
    if not destination.is_relative_to(root.resolve()):
        return f"{target}: outside the repository"
    if not destination.exists():
        return f"{target}: no such file"
    if anchor and destination.suffix == ".md" and anchor not in anchors_of(destination.read_text()):
        return f"{target}: no heading with the anchor #{anchor} in {destination.relative_to(root.resolve())}"
    return None


def broken_links(root: Path) -> list[str]:
    """Every link of the README and docs/ that leads to a missing file or heading, named with its page."""
    problems = []
    for page in markdown_files(root):
        for target in link_targets(page.read_text()):
            reason = broken_link(page, target, root)
            if reason:
                problems.append(f"{page.relative_to(root)}: {reason}")
    return problems


def code_texts(text: str) -> list[str]:
    """What the page shows as code: its fenced blocks (line by line) and its code spans."""
    prose, code = split_fences(text)
    spans = [" ".join(match.group(2).split()) for match in CODE_SPAN.finditer(prose)]
    return [line for line in code.split("\n") if line.strip()] + spans


def test_every_relative_link_and_anchor_resolves():
    assert broken_links(REPO) == []


@pytest.mark.parametrize("heading, anchor", [
    ("What `make demo` does", "what-make-demo-does"),
    ("Data layout (DATA_ROOT)", "data-layout-data_root"),
    ("Many machines: `--shard K/N`", "many-machines---shard-kn"),
    ("Explanations (Grad-CAM)", "explanations-grad-cam"),
    ("What a model can do (read before trusting a verdict)", "what-a-model-can-do-read-before-trusting-a-verdict"),
    ("Resume, overwrite", "resume-overwrite"),
])
def test_anchors_follow_github(heading, anchor):
    assert github_anchor(heading) == anchor


def test_the_check_finds_missing_files_and_anchors(tmp_path):
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text(
        "# Page A\n\n## Same\n\n## Same\n\n```bash\n# not a heading\n```\n\n"
        "[up](../README.md#front-page) [self](#same-1) [gone](#same-2) [code](#not-a-heading)\n"
        "`[shown as code](missing.md)` [web](https://example.org/x.md) ![img](pic.png)\n")
    (root / "README.md").write_text(
        "# Front page\n\n[a](docs/a.md#page-a) [b](docs/b.md) [c](docs/a.md#nowhere) [d](../outside.md)\n")
    (tmp_path / "outside.md").write_text("# Outside\n")
    assert sorted(broken_links(root)) == sorted([
        "README.md: docs/b.md: no such file",
        "README.md: docs/a.md#nowhere: no heading with the anchor #nowhere in docs/a.md",
        "README.md: ../outside.md: outside the repository",
        "docs/a.md: #same-2: no heading with the anchor #same-2 in docs/a.md",
        "docs/a.md: #not-a-heading: no heading with the anchor #not-a-heading in docs/a.md",
        "docs/a.md: pic.png: no such file",
    ])


def test_the_readme_is_a_front_page_that_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < README_MAX_LINES, "the README is the front page: move details to docs/"
    assert "make demo" in readme and "make test" in readme
    linked = {(REPO / target.partition("#")[0]).resolve() for target in link_targets(readme)}
    unlinked = [page.name for page in sorted((REPO / "docs").glob("*.md")) if page.resolve() not in linked]
    assert unlinked == [], f"docs pages the README does not link to: {unlinked}"


def _python_modules(code: str) -> set[str]:
    names = set(re.findall(r"python3? -m ([A-Za-z_][\w.]*\w)(?![\w.<])", code))
    return {name for name in names if name.split(".")[0] in PACKAGES + TOP_LEVEL_MODULES}


def _module_runs(name: str) -> bool:
    """Whether ``python -m name`` runs something: a module with a main block, or a package's __main__.py."""
    path = REPO.joinpath(*name.split("."))
    module = path.with_suffix(".py")
    return (path / "__main__.py").is_file() or (module.is_file() and "__name__ == \"__main__\"" in module.read_text())


def _repo_paths(code: str) -> set[str]:
    paths = set(re.findall(r"(?<![\w./-])\.?/?((?:[\w.-]+/)*[\w.-]+\.(?:py|sh|json|md|png))\b", code))
    # a worked example's new module is named my*.py (datasets/mydata.py): it is not in the repository on purpose
    return {path for path in paths
            if (path.split("/")[0] in CODE_FOLDERS or ("/" not in path and path.endswith((".py", ".sh"))))
            and not path.rsplit("/", 1)[-1].startswith("my")}


def test_the_commands_and_files_the_docs_name_exist():
    texts = [text for page in markdown_files(REPO) for text in code_texts(page.read_text())]
    missing_modules = sorted({name for text in texts for name in _python_modules(text) if not _module_runs(name)})
    assert missing_modules == [], f"`python -m` of modules that are not in the code or have no main: {missing_modules}"
    missing_files = sorted({path for text in texts for path in _repo_paths(text) if not (REPO / path).is_file()})
    assert missing_files == [], f"files the docs name that are not in the repository: {missing_files}"
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))
    asked = {name for text in texts for name in re.findall(r"(?:^|\s)make ([a-z][\w-]*)", text)}
    assert asked - targets == set(), f"make targets the docs name that the Makefile lacks: {asked - targets}"


def _resolve_dotted(name: str) -> object:
    """Import the longest module prefix of ``name``, then take the rest as attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ModuleNotFoundError(name)


def test_the_python_names_the_docs_give_exist():
    dotted = re.compile(rf"((?:{'|'.join(PACKAGES + TOP_LEVEL_MODULES)})(?:\.\w+)+)(?:\(.*)?")
    names = {match.group(1) for page in markdown_files(REPO) for text in code_texts(page.read_text())
             if (match := dotted.fullmatch(text)) and not text.endswith((".py", ".sh", ".json", ".md"))}
    assert names, "no Python name found in the docs: the pattern is wrong"
    missing = []
    for name in sorted(names):
        try:
            _resolve_dotted(name)
        except (ImportError, AttributeError) as error:
            missing.append(f"{name} ({error})")
    assert missing == [], f"Python names the docs give that the code lacks: {missing}"


# options of other programs the docs show (Slurm's sbatch in the sharding example)
OTHER_PROGRAMS_OPTIONS = {"--array", "--dependency", "--gres", "--parsable", "--wrap"}


def _project_code() -> str:
    folders = [REPO / name for name in PACKAGES + ("bench", "scripts")]
    files = [path for folder in folders for path in folder.rglob("*") if path.suffix in (".py", ".sh")]
    files += [path for path in REPO.glob("*") if path.suffix in (".py", ".sh")] + [REPO / "Makefile"]
    return "\n".join(path.read_text() for path in files)


def test_the_options_the_docs_give_exist():
    import dataclasses

    from prediction.options import PredictorOptions
    from training.pipelines.train_classifier import TrainOptions

    texts = [text for page in markdown_files(REPO) for text in code_texts(page.read_text())]
    flags = {flag for text in texts for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", text)}
    code = _project_code()
    # the predictor's and the trainer's flags are made from the option fields' names
    generated_flags = {field.metadata["flag"] or "--" + field.name.replace("_", "-")
                       for options in (PredictorOptions, TrainOptions) for field in dataclasses.fields(options)}
    unknown = sorted(flag for flag in flags - OTHER_PROGRAMS_OPTIONS - generated_flags
                     if not re.search(rf"{re.escape(flag)}(?![\w-])", code))
    assert unknown == [], f"options the docs give that no command of the project takes: {unknown}"
