"""How far each default option moves the scores from the winner preset, and what it costs or saves.

On the real clips with the parity checkpoint (a winner-format Lite0 at 224 px, whose face scores
spread over (0, 1) so that any change in frames, boxes or crops shows): the ``winner`` preset, then
each option where the ``default`` preset differs switched alone from the preset's value to the
default's, then the ``default`` preset (all of them together). Per row: the largest |video score
change| against the preset, against the original predictor's answers
(``../shared/parity/winner_predictions_real_small.json``), and seconds per video (the folder
pipeline, reader and classifier threads on, on the CPU in fp32).

    python bench/preset_gap.py --write-docs docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.common import machine_description, max_score_change, write_section  # noqa: E402
from bench.predict import run_config  # noqa: E402
from datasets.layout import DataLayout  # noqa: E402
from models.checkpoints import load_model  # noqa: E402
from prediction.options import resolve_options  # noqa: E402
from prediction.predictor import list_videos  # noqa: E402

SECTION = "## Prediction: the default options against the winner preset"
PARITY_DIR = REPO_ROOT.parent / "shared" / "parity"
CHECKPOINT_NAME = "final_111_DeepFakeClassifier_tf_efficientnet_lite0_0_0"
REFERENCE_NAME = "winner_predictions_real_small.json"
DEFAULT_REAL_ROOT = REPO_ROOT.parent / "shared" / "data" / "real_small"


def option_switches(base: str = "winner", target: str = "default") -> list[tuple[str, object, object]]:
    """(option, base value, target value) for every option where the two presets differ."""
    a, b = resolve_options(base).as_dict(), resolve_options(target).as_dict()
    return [(name, a[name], b[name]) for name in a if a[name] != b[name]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parity-dir", type=Path, default=PARITY_DIR)
    parser.add_argument("--real-root", type=Path, default=DEFAULT_REAL_ROOT)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--write-docs", type=Path, default=None, help="replace this section there")
    args = parser.parse_args(argv)
    checkpoint = args.parity_dir / CHECKPOINT_NAME
    reference_path = args.parity_dir / REFERENCE_NAME
    videos = list_videos(DataLayout(args.real_root).part_dir(0)) if args.real_root.is_dir() else []
    if not checkpoint.is_file() or not reference_path.is_file() or not videos:
        print(f"needs {checkpoint}, {reference_path} and the clips of {args.real_root}", file=sys.stderr)
        return 2
    reference = {name: r["probability"] for name, r in json.loads(reference_path.read_text()).items()}
    videos = [v for v in videos if v.name in reference]

    rows = [("winner preset", resolve_options("winner", device="cpu"))]
    for option, was, now in option_switches():
        rows.append((f"`{option}`: {was} -> {now}", resolve_options("winner", device="cpu", **{option: now})))
    rows.append(("default preset (all of them)", resolve_options("default", device="cpu")))
    results = []
    for name, options in rows:
        print(f"running: {name}", file=sys.stderr, flush=True)
        results.append(run_config(name, videos, [load_model(checkpoint, device="cpu")], options, prefetch=2))
        print(f"  {results[-1]['s_per_video']:.2f} s/video", file=sys.stderr, flush=True)

    preset = results[0]
    command = "python " + " ".join(["bench/preset_gap.py"] + (argv if argv is not None else sys.argv[1:]))
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine_description()}; the {len(videos)} clips of "
        f"`real_small`, 32 frames, the parity checkpoint ({CHECKPOINT_NAME}, 224 px, fp32 on the CPU). "
        f"Each row switches one option from the winner preset's value to the default's (all of them in the "
        f"last row). Command: `{command}`.",
        "",
        "| options | max abs score change vs preset | max abs difference vs the original predictor | s / video "
        "| CPU s / video |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        vs_preset = max_score_change(r["scores"], preset["scores"])
        vs_original = max_score_change(r["scores"], reference)
        lines.append(f"| {r['name']} | {vs_preset:.2e} | {vs_original:.2e} | {r['s_per_video']:.2f} "
                     f"| {r['cpu_s_per_video']:.2f} |")
    lines += ["", "s / video: wall clock over the set (reader and classifier threads on); CPU s / video: the "
              "process's CPU time (all threads), less sensitive to other load on a shared machine. "
              f"Most faces in a video: {max(max(r['faces'].values()) for r in results)} (the winner's cap, "
              "and the face order it cuts by, act only above 127)."]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.write_docs:
        write_section(args.write_docs, SECTION, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
