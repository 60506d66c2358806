"""The released weight files this project knows, and the one place that fetches and verifies them.

* The DFDC winner's seven B7 checkpoints (release ``0.0.1`` of selimsef/dfdc_deepfake_challenge); the
  sizes and sha256 are the ones recorded in a public Git LFS copy of the same files.
* ImageNet weights of the encoders, from timm's ``v0.1-weights`` GitHub release (the URLs timm's own
  pretrained configs list for these models). No full checksum of them is published: their file names
  carry the first 8 hex digits of the sha256 (torch.hub's convention), which is checked; the full
  sha256 of the first verified copy is recorded and every later check compares against it (trust on
  first use).
* Kinetics-400 weights of torchvision's video networks (r3d_18, mc3_18, r2plus1d_18), from the URLs
  torchvision's own weight enums list. torchvision publishes only the sha256 prefix in the names; the
  full sha256 and sizes below are the ones several public projects recorded for these files, each
  consistent with that prefix and with torchvision's own file-size metadata (tested). They were not
  downloaded here (this project's machines are offline).

A weights folder holds the files under their released names (ImageNet files in ``imagenet/``), plus
``.verified.json``, a record of what was verified: size, mtime and sha256 per file, so a second check
does not hash 1.9 GB again. A file whose size or mtime changed since is hashed again. Downloads go to
``.NAME.part`` (resumed with an HTTP Range request) and are renamed into place only once verified; a
file that fails verification is moved to ``.NAME.rejected``. Hidden names, so the checkpoint finder
never takes either for a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from core.files import write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
WINNER_RELEASE_URL = "https://github.com/selimsef/dfdc_deepfake_challenge/releases/download/0.0.1/"
TIMM_RELEASE_URL = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
TORCHVISION_URL = "https://download.pytorch.org/models/"
IMAGENET_FOLDER = "imagenet"
KINETICS_FOLDER = "kinetics400"
RECORD_NAME = ".verified.json"
PART_SUFFIX = ".part"
REJECTED_SUFFIX = ".rejected"
DOWNLOAD_COMMAND = "./download_weights.sh"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
_CHUNK_BYTES = 1 << 20


class WeightsError(Exception):
    """Weights cannot be fetched or verified; the message names the file and the fix."""


class OfflineError(WeightsError):
    """The server cannot be reached at all (no route, DNS failure, refused connection)."""


@dataclass(frozen=True)
class ReleasedFile:
    name: str
    size_bytes: int | None  # None: not published (checked against the server's length instead)
    sha256: str | None  # None: not published (see sha256_prefix and trust on first use)
    url: str
    sha256_prefix: str | None = None
    folder: str = ""  # sub-folder of the weights folder

    @property
    def relative_path(self) -> str:
        return f"{self.folder}/{self.name}" if self.folder else self.name


def _winner(name: str, size_bytes: int, sha256: str) -> ReleasedFile:
    return ReleasedFile(name, size_bytes, sha256, WINNER_RELEASE_URL + name)


# The winning submission's ensemble (the seven models its predictor averages).
WINNER_CHECKPOINTS: tuple[ReleasedFile, ...] = (
    _winner("final_111_DeepFakeClassifier_tf_efficientnet_b7_ns_0_36", 266910617,
            "9db77ab9318863e2f8ab287c8eb83c2232584b82dc2fb41f1d614ddd7900cccb"),
    _winner("final_555_DeepFakeClassifier_tf_efficientnet_b7_ns_0_19", 266910618,
            "e2f0066a8ff036add2f5b418d2eba1051c2d2788f84168f00a85207f3b666e04"),
    _winner("final_777_DeepFakeClassifier_tf_efficientnet_b7_ns_0_29", 266910617,
            "9fe4311d551a9cbaa1475dbcd6b15fccb31a1e17a8d63069e90a8899aef03b5c"),
    _winner("final_777_DeepFakeClassifier_tf_efficientnet_b7_ns_0_31", 266910617,
            "00dd6cd9466cddfd7da7c333d8fecae81593307827093deaf4d7cdf704bc8bfa"),
    _winner("final_888_DeepFakeClassifier_tf_efficientnet_b7_ns_0_37", 266910615,
            "d4a2bb4aefde59e045463ad469ed9660765beb086f65a09f9478ab060d403c7c"),
    _winner("final_888_DeepFakeClassifier_tf_efficientnet_b7_ns_0_40", 266910613,
            "c1d326a6651011390efe602e42cb8228232d6d18a15c404cf85d7233482f6d6d"),
    _winner("final_999_DeepFakeClassifier_tf_efficientnet_b7_ns_0_23", 266910615,
            "849036dc211387420412feb68c7451e98a948072b94e213e1104e2f2bf7791ad"),
)


def _timm(name: str) -> ReleasedFile:
    prefix = name.rsplit("-", 1)[1].split(".")[0]
    return ReleasedFile(name, None, None, TIMM_RELEASE_URL + name, sha256_prefix=prefix, folder=IMAGENET_FOLDER)


# ImageNet weights per encoder (project names, see classifiers.ENCODERS); timm key names.
IMAGENET_WEIGHTS: dict[str, ReleasedFile] = {
    "tf_efficientnet_b7_ns": _timm("tf_efficientnet_b7_ns-1dbc32de.pth"),
    "tf_efficientnet_b6_ns": _timm("tf_efficientnet_b6_ns-51548356.pth"),
    "tf_efficientnet_b5_ns": _timm("tf_efficientnet_b5_ns-6f26d0cf.pth"),
    "tf_efficientnet_b4_ns": _timm("tf_efficientnet_b4_ns-d6313a46.pth"),
    "tf_efficientnet_b0_ns": _timm("tf_efficientnet_b0_ns-c0e6a31c.pth"),
    "tf_efficientnet_lite0": _timm("tf_efficientnet_lite0-0aa007d2.pth"),
    "tf_efficientnet_lite1": _timm("tf_efficientnet_lite1-bde8b488.pth"),
    "tf_efficientnet_lite2": _timm("tf_efficientnet_lite2-dcccb7df.pth"),
}


def _kinetics(name: str, size_bytes: int, sha256: str) -> ReleasedFile:
    prefix = name.rsplit("-", 1)[1].split(".")[0]
    return ReleasedFile(name, size_bytes, sha256, TORCHVISION_URL + name, sha256_prefix=prefix, folder=KINETICS_FOLDER)


# Kinetics-400 weights per torchvision video network (torchvision key names; "pretrained": "kinetics400").
KINETICS_WEIGHTS: dict[str, ReleasedFile] = {
    "r3d_18": _kinetics("r3d_18-b3b3357e.pth", 133546016,
                        "b3b3357ead25631ec9c57362ff2128a92d0427e01e2cd184951a44380c3f2e9d"),
    "mc3_18": _kinetics("mc3_18-a90a0ba3.pth", 46841888,
                        "a90a0ba35ca1242d15b77511ff28bfb29cc596988b5ea36081042f8e2f54212b"),
    "r2plus1d_18": _kinetics("r2plus1d_18-91a641e6.pth", 126162996,
                             "91a641e6c2ab531d1aca5f4321b4d802ec5c3babc15df855cdb6e39c6a1107c8"),
}


def default_weights_dir() -> Path:
    """``$WEIGHTS_DIR``, else the repository's ``weights/``."""
    return Path(os.environ.get("WEIGHTS_DIR") or REPO_ROOT / "weights")


def released_file(name: str) -> ReleasedFile | None:
    """The released file with this file name, if it is one this project knows."""
    for file in (*WINNER_CHECKPOINTS, *IMAGENET_WEIGHTS.values(), *KINETICS_WEIGHTS.values()):
        if file.name == name:
            return file
    return None


def imagenet_file(encoder: str) -> ReleasedFile:
    """The ImageNet weights file of an encoder (project or timm name)."""
    from models.classifier2d import timm_name  # imports torch: only when an encoder is asked for

    for project_name, file in IMAGENET_WEIGHTS.items():
        if encoder in (project_name, timm_name(project_name)):
            return file
    known = ", ".join(sorted(IMAGENET_WEIGHTS))
    raise WeightsError(f"no published ImageNet weights file known for encoder {encoder!r}; known: {known}")


def kinetics_file(architecture: str) -> ReleasedFile:
    """The Kinetics-400 weights file of a torchvision video network."""
    try:
        return KINETICS_WEIGHTS[architecture]
    except KeyError:
        raise WeightsError(f"no Kinetics-400 weights known for {architecture!r}; known: "
                           f"{', '.join(KINETICS_WEIGHTS)}") from None


def select_files(names: Iterable[str] = (), imagenet: Iterable[str] = (),
                 kinetics: Iterable[str] = ()) -> list[ReleasedFile]:
    """The files a command line asks for: winner checkpoint names (``all`` for the seven), encoders and
    video networks (``all`` for every one); nothing asked -> the seven winner checkpoints."""
    names, imagenet, kinetics = list(names), list(imagenet), list(kinetics)
    if not names and not imagenet and not kinetics:
        names = ["all"]
    chosen: list[ReleasedFile] = []
    by_name = {f.name: f for f in WINNER_CHECKPOINTS}
    for name in names:
        if name == "all":
            chosen.extend(WINNER_CHECKPOINTS)
        elif name in by_name:
            chosen.append(by_name[name])
        else:
            raise WeightsError(f"unknown checkpoint {name!r}; the winner's are: {', '.join(by_name)} (or 'all')")
    for encoder in imagenet:
        chosen.extend(IMAGENET_WEIGHTS.values() if encoder == "all" else [imagenet_file(encoder)])
    for architecture in kinetics:
        chosen.extend(KINETICS_WEIGHTS.values() if architecture == "all" else [kinetics_file(architecture)])
    return list(dict.fromkeys(chosen))


def file_sha256(path: str | os.PathLike, on_bytes: Callable[[int], object] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
            if on_bytes:
                on_bytes(len(chunk))
    return digest.hexdigest()


# ---- the record of verified files ------------------------------------------------------------------------


class VerifiedRecord:
    """``<weights dir>/.verified.json``: per file (relative path) the size, mtime and sha256 it had when it
    was verified, and whether that sha256 is the published one or the first verified copy's."""

    def __init__(self, weights_dir: str | os.PathLike):
        self.path = Path(weights_dir) / RECORD_NAME
        try:
            data = json.loads(self.path.read_text())
            self.entries: dict[str, dict] = dict(data["files"])
        except (OSError, ValueError, KeyError, TypeError):  # none yet, or damaged: verify everything again
            self.entries = {}

    def first_use_sha256(self, file: ReleasedFile) -> str | None:
        entry = self.entries.get(file.relative_path)
        return entry["sha256"] if entry and entry.get("checksum") == "first download" else None

    def matches(self, file: ReleasedFile, stat: os.stat_result, sha256: str | None) -> bool:
        entry = self.entries.get(file.relative_path)
        return bool(entry and entry.get("size_bytes") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns
                    and (sha256 is None or entry.get("sha256") == sha256))

    def store(self, file: ReleasedFile, stat: os.stat_result, sha256: str) -> None:
        checksum = "published" if file.sha256 else "first download"
        self.entries[file.relative_path] = {"size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                            "sha256": sha256, "checksum": checksum}
        try:
            write_json_atomic(self.path, {"files": self.entries})
        except OSError:  # a read-only weights folder: the file is still verified, only hashed again next time
            pass


# ---- verification ----------------------------------------------------------------------------------------


@dataclass
class FileCheck:
    file: ReleasedFile
    path: Path
    problem: str | None  # None: verified
    sha256: str | None = None
    size_bytes: int | None = None
    from_record: bool = False  # verified by the record (size and mtime unchanged), without hashing
    first_use: bool = False  # no published checksum: this copy's sha256 is now the recorded one
    downloaded: bool = False
    rejected_to: Path | None = None  # where a file that failed verification was moved

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_file(path: str | os.PathLike, file: ReleasedFile, record: VerifiedRecord,
               on_bytes: Callable[[int], object] | None = None) -> FileCheck:
    """Verify one file against its published size and sha256 (or the recorded first-use sha256 and the
    published prefix); an unchanged file already verified is not hashed again. Records what it verified."""
    path = Path(path)
    if not path.is_file():
        return FileCheck(file, path, "missing")
    stat = path.stat()
    if file.size_bytes is not None and stat.st_size != file.size_bytes:
        return FileCheck(file, path, f"is {stat.st_size} bytes, the released file is {file.size_bytes}",
                         size_bytes=stat.st_size)
    expected = file.sha256 or record.first_use_sha256(file)
    if record.matches(file, stat, expected):
        return FileCheck(file, path, None, record.entries[file.relative_path]["sha256"], stat.st_size,
                         from_record=True)
    actual = file_sha256(path, on_bytes)
    if expected is not None and actual != expected:
        source = "published" if file.sha256 else "recorded at its first download"
        return FileCheck(file, path, f"has sha256 {actual}, the {source} sha256 is {expected}", actual,
                         stat.st_size)
    if file.sha256_prefix and not actual.startswith(file.sha256_prefix):
        return FileCheck(file, path, f"has sha256 {actual}, which does not start with {file.sha256_prefix} "
                         f"(the sha256 prefix in its published name)", actual, stat.st_size)
    record.store(file, stat, actual)
    return FileCheck(file, path, None, actual, stat.st_size, first_use=expected is None)


def reject(path: Path) -> Path:
    """Move a file that failed verification out of use (a hidden name beside it); returns the new path."""
    target = path.with_name(f".{path.name.lstrip('.').removesuffix(PART_SUFFIX)}{REJECTED_SUFFIX}")
    os.replace(path, target)
    return target


# ---- network ---------------------------------------------------------------------------------------------


def unreachable_reason(url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """None when the server of ``url`` (or the proxy for it) accepts a TCP connection; else why not.

    A short connect instead of the first request: offline, urllib's own attempt can take minutes.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return None
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or "", proxy_parts.port or 80
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({type(exc).__name__}: {exc})"


def _expected_total(response, offset: int, resumed: bool) -> int | None:
    if resumed:  # "Content-Range: bytes START-END/TOTAL"
        total = (response.headers.get("Content-Range") or "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def fetch_to_part(url: str, part: Path, size_bytes: int | None, timeout_s: float = READ_TIMEOUT_S,
                  on_size: Callable[[int], object] | None = None) -> int:
    """Download ``url`` into ``part``, continuing a partial file with a Range request when the server
    honours it (else starting again); ``on_size`` gets the bytes on disk so far. Returns the file's
    size; raises WeightsError when the transfer stops early (what arrived stays in ``part``)."""
    offset = part.stat().st_size if part.exists() else 0
    if size_bytes is not None and offset > size_bytes:
        offset = 0
    if size_bytes is not None and offset == size_bytes:
        return offset
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing after the partial file: it is complete
            return offset
        raise WeightsError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise WeightsError(f"{url} cannot be opened ({reason})") from exc
    with response:
        resumed = offset > 0 and getattr(response, "status", None) == 206
        if not resumed:
            offset = 0
        total = _expected_total(response, offset, resumed)
        received = 0
        with open(part, "ab" if resumed else "wb") as out:
            try:
                while chunk := response.read(_CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    if on_size:
                        on_size(offset + received)
            except (OSError, HTTPException) as exc:  # connection reset, timeout, IncompleteRead
                raise WeightsError(f"download of {url} stopped after {offset + received} bytes "
                                   f"({type(exc).__name__}: {exc})") from exc
    size = offset + received
    if total is not None and size < total:
        raise WeightsError(f"download of {url} stopped after {size} of {total} bytes (connection closed)")
    return size


# ---- the whole job ---------------------------------------------------------------------------------------


def offline_instructions(files: Iterable[ReleasedFile], weights_dir: Path) -> str:
    """Where files fetched on another machine go, for an offline machine's error message."""
    lines = [f"Fetch them on a machine with internet access and copy them into {weights_dir.resolve()}/ as:"]
    for file in files:
        size = f"{file.size_bytes} bytes" if file.size_bytes else "size not published"
        lines.append(f"  {file.relative_path}  ({size}; from {file.url})")
    lines.append(f"then run `{DOWNLOAD_COMMAND} {weights_dir} --verify-only` (any run verifies them): each "
                 f"file's size and sha256 are checked before use")
    return "\n".join(lines)


def url_for(file: ReleasedFile, base_url: str | None) -> str:
    return f"{base_url.rstrip('/')}/{file.name}" if base_url else file.url


def download(file: ReleasedFile, weights_dir: Path, record: VerifiedRecord, base_url: str | None = None,
             retries: int = 2, timeout_s: float = READ_TIMEOUT_S,
             on_size: Callable[[int], object] | None = None) -> FileCheck:
    """Fetch one file into ``.NAME.part`` (resuming), verify it, rename it into place. A transfer cut off
    is resumed up to ``retries`` times; a file that fails verification ends as ``.NAME.rejected``."""
    final = weights_dir / file.relative_path
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(f".{file.name}{PART_SUFFIX}")
    url = url_for(file, base_url)
    if file.size_bytes is not None:
        needed = file.size_bytes - (part.stat().st_size if part.exists() else 0)
        free = shutil.disk_usage(final.parent).free
        if needed > free:
            raise WeightsError(f"{final}: {needed} more bytes needed, {free} free in {final.parent}; free some "
                               f"space or give another folder")
    for attempt in range(retries + 1):
        try:
            fetch_to_part(url, part, file.size_bytes, timeout_s, on_size)
            break
        except WeightsError as exc:
            if attempt < retries and part.exists():
                continue  # resume what arrived
            kept = f"; the partial file is kept at {part}: run the same command again to resume" \
                if part.exists() else ""
            raise WeightsError(f"{exc}{kept}") from exc
    check = check_file(part, file, record)
    if check.ok:
        os.replace(part, final)  # same size and mtime: the record made for the part holds for the final name
    else:
        check.rejected_to = reject(part)
    check.path, check.downloaded = final, True
    return check


def ensure_files(files: Iterable[ReleasedFile], weights_dir: str | os.PathLike, base_url: str | None = None,
                 verify_only: bool = False, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 retries: int = 2, progress: bool = False) -> list[FileCheck]:
    """Verify what is present, fetch what is missing (unless ``verify_only``); one FileCheck per file.

    A present file that fails verification is moved out of use (``.NAME.rejected``) and fetched again.
    Raises OfflineError, before any transfer, when a file must be fetched and its server cannot be reached.
    """
    from tqdm import tqdm

    files, weights_dir = list(files), Path(weights_dir)
    record = VerifiedRecord(weights_dir)
    checks: list[FileCheck] = []
    for file in files:
        with tqdm(total=file.size_bytes, unit="B", unit_scale=True, desc=f"verify {file.name}",
                  disable=not progress, leave=False) as bar:
            check = check_file(weights_dir / file.relative_path, file, record, bar.update)
        if not check.ok and check.problem != "missing":
            check.rejected_to = reject(check.path)
        checks.append(check)
    if verify_only:
        return checks
    to_fetch = [i for i, check in enumerate(checks) if not check.ok]
    for url in dict.fromkeys(url_for(files[i], base_url) for i in to_fetch):
        reason = unreachable_reason(url, connect_timeout_s)
        if reason:
            raise OfflineError(f"{reason}: this machine looks offline, and {len(to_fetch)} file(s) must be "
                               f"fetched.\n{offline_instructions([files[i] for i in to_fetch], weights_dir)}")
    for i in to_fetch:
        file = files[i]
        try:
            with tqdm(total=file.size_bytes, unit="B", unit_scale=True, desc=file.name,
                      disable=not progress) as bar:
                fetched = download(file, weights_dir, record, base_url, retries,
                                   on_size=lambda n, bar=bar: bar.update(n - bar.n))
        except WeightsError as exc:  # this file failed; the others are still fetched
            fetched = FileCheck(file, weights_dir / file.relative_path, str(exc))
        fetched.rejected_to = fetched.rejected_to or checks[i].rejected_to
        checks[i] = fetched
    return checks


def imagenet_weights_path(encoder: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Where ``download_weights.sh --imagenet ENCODER`` puts the encoder's ImageNet weights."""
    weights_dir = Path(weights_dir) if weights_dir else default_weights_dir()
    return weights_dir / imagenet_file(encoder).relative_path


def verify_imagenet_weights(encoder: str, weights_dir: str | os.PathLike | None = None) -> FileCheck:
    weights_dir = Path(weights_dir) if weights_dir else default_weights_dir()
    file = imagenet_file(encoder)
    return check_file(weights_dir / file.relative_path, file, VerifiedRecord(weights_dir))



def verify_kinetics_weights(architecture: str, weights_dir: str | os.PathLike | None = None) -> FileCheck:
    """Where ``download_weights.sh --kinetics ARCH`` put the network's Kinetics-400 weights, verified."""
    weights_dir = Path(weights_dir) if weights_dir else default_weights_dir()
    file = kinetics_file(architecture)
    return check_file(weights_dir / file.relative_path, file, VerifiedRecord(weights_dir))
