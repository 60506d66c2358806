"""Fetch and verify released weights: ``./download_weights.sh [DEST] [options]`` (this module's CLI).

Default: the DFDC winner's seven B7 checkpoints into ``weights/``. ``--imagenet ENCODER`` fetches an
encoder's ImageNet weights into ``DEST/imagenet/``, where ``"pretrained": "timm"`` finds them offline;
``--kinetics NETWORK`` a torchvision video network's Kinetics-400 weights into ``DEST/kinetics400/``,
where ``"pretrained": "kinetics400"`` of the ``video_resnet`` family finds them.
Exit code 0 when every asked-for file is present and verified, 2 otherwise (bad option, offline, a
checksum mismatch, a transfer cut off), with a message naming the file and the fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from models.weights import (
    CONNECT_TIMEOUT_S,
    IMAGENET_WEIGHTS,
    KINETICS_WEIGHTS,
    WINNER_CHECKPOINTS,
    FileCheck,
    OfflineError,
    WeightsError,
    default_weights_dir,
    ensure_files,
    select_files,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="download_weights.sh", description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="winner checkpoints: " + ", ".join(f.name for f in WINNER_CHECKPOINTS)
        + "\nImageNet encoders: " + ", ".join(IMAGENET_WEIGHTS)
        + "\nKinetics-400 video networks: " + ", ".join(KINETICS_WEIGHTS))
    parser.add_argument("dest", nargs="?", help="weights folder (default: $WEIGHTS_DIR, else the repository's weights/)")
    parser.add_argument("--files", nargs="+", default=[], metavar="NAME",
                        help="winner checkpoints to fetch ('all' = the seven; the default when none of "
                             "--files, --imagenet, --kinetics is given)")
    parser.add_argument("--imagenet", nargs="+", default=[], metavar="ENCODER",
                        help="encoders whose ImageNet weights to fetch (project or timm names, or 'all')")
    parser.add_argument("--kinetics", nargs="+", default=[], metavar="NETWORK",
                        help="torchvision video networks whose Kinetics-400 weights to fetch (r3d_18, mc3_18, "
                             "r2plus1d_18, or 'all')")
    parser.add_argument("--base-url", help="fetch every file from BASE_URL/NAME instead (a mirror, file:// folder)")
    parser.add_argument("--verify-only", action="store_true", help="check the files present; fetch nothing")
    parser.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT_S, metavar="SECONDS",
                        help="how long to wait for the server before calling the machine offline")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def describe(check: FileCheck) -> str:
    if check.ok:
        how = "downloaded, verified" if check.downloaded else (
            "verified (unchanged since last check)" if check.from_record else "verified")
        line = f"ok  {check.path}  {how}"
        if check.first_use:
            line += (f"\n    no full sha256 is published for this file; this copy's is {check.sha256} (its prefix "
                     f"{check.file.sha256_prefix} matches the published name), recorded: later checks compare "
                     f"against it. Compare it with another source if you can.")
        return line
    line = f"BAD {check.path}  {check.problem}"
    if check.rejected_to:
        line += f"\n    moved out of use to {check.rejected_to}"
    return line


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dest = Path(args.dest) if args.dest else default_weights_dir()
    try:
        files = select_files(args.files, args.imagenet, args.kinetics)
        checks = ensure_files(files, dest, base_url=args.base_url, verify_only=args.verify_only,
                              connect_timeout_s=args.connect_timeout, progress=not args.no_progress)
    except OfflineError as exc:
        print(f"error: offline: {exc}", file=sys.stderr)
        return 2
    except (WeightsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for check in checks:
        print(describe(check), file=sys.stdout if check.ok else sys.stderr)
    bad = [c for c in checks if not c.ok]
    if not bad:
        print(f"all {len(checks)} file(s) present and verified in {dest}")
        return 0
    missing = [c for c in bad if c.problem == "missing"]
    if args.verify_only and missing:
        print(f"error: {len(missing)} file(s) missing in {dest}; run without --verify-only to fetch them",
              file=sys.stderr)
    if any(c.rejected_to for c in bad):
        print("error: a file that fails verification is never used; run the same command again to fetch it "
              "afresh (or copy a good copy in place)", file=sys.stderr)
    print(f"error: {len(bad)} of {len(checks)} file(s) not verified", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
