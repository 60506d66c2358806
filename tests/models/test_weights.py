"""download_weights.sh's code path against a loopback HTTP server and file:// URLs (nothing leaves the
machine): download + verify, resume, checksum mismatch, a transfer cut off, the verified record, offline."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

import models.weights as weights
from models.download_weights import main
from models.weights import IMAGENET_WEIGHTS, WINNER_CHECKPOINTS, ReleasedFile, ensure_files

REPO = Path(__file__).resolve().parents[2]
NAME = "final_111_DeepFakeClassifier_tf_efficientnet_lite0_0_1"
PAYLOAD = np.random.default_rng(0).integers(0, 256, 3 * 2**20 + 12345, dtype=np.uint8).tobytes()
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """http.server on 127.0.0.1 serving ``files`` with Range support; records every request.

    ``mode``: "normal", or "truncate" (announces the full length, sends half of it, closes).
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.bytes_sent = 0
        self.mode = "normal"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = 0
                if self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][6:].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode == "truncate":
                    body = body[: len(body) // 2]
                    self.close_connection = True
                server.bytes_sent += len(body)  # before writing: the client may finish before write returns
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/releases/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    served = Server()
    served.files[NAME] = PAYLOAD
    yield served
    served.close()


@pytest.fixture
def catalogue(monkeypatch):
    """The winner's catalogue replaced by one small released file (the data, not the code under test)."""
    file = ReleasedFile(NAME, len(PAYLOAD), PAYLOAD_SHA256, "https://github.invalid/" + NAME)
    monkeypatch.setattr(weights, "WINNER_CHECKPOINTS", (file,))
    return file


def _run(capsys, *args) -> tuple[int, str, str]:
    code = main([*map(str, args), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_verifies_and_renames_into_place_over_http_and_file_urls(tmp_path, server, catalogue, capsys):
    dest = tmp_path / "weights"
    code, out, err = _run(capsys, dest, "--base-url", server.url)
    assert code == 0, err
    assert (dest / NAME).read_bytes() == PAYLOAD
    assert "downloaded, verified" in out and "all 1 file(s) present and verified" in out
    assert sorted(p.name for p in dest.iterdir()) == [".verified.json", NAME]
    record = json.loads((dest / ".verified.json").read_text())["files"][NAME]
    assert record["sha256"] == PAYLOAD_SHA256 and record["checksum"] == "published"
    assert server.requests == [(NAME, None)]

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / NAME).write_bytes(PAYLOAD)
    other = tmp_path / "other"
    assert _run(capsys, other, "--base-url", mirror.as_uri())[0] == 0
    assert (other / NAME).read_bytes() == PAYLOAD


def test_a_partial_file_is_resumed_with_a_range_request(tmp_path, server, catalogue, capsys):
    dest = tmp_path / "weights"
    dest.mkdir()
    kept = 1_000_003
    (dest / f".{NAME}.part").write_bytes(PAYLOAD[:kept])
    code, _, err = _run(capsys, dest, "--base-url", server.url)
    assert code == 0, err
    assert server.requests == [(NAME, f"bytes={kept}-")]
    assert server.bytes_sent == len(PAYLOAD) - kept
    assert (dest / NAME).read_bytes() == PAYLOAD
    assert not (dest / f".{NAME}.part").exists()


def test_a_cut_off_transfer_is_kept_as_part_and_resumed_next_time(tmp_path, server, catalogue, capsys):
    dest = tmp_path / "weights"
    server.mode = "truncate"
    code, _, err = _run(capsys, dest, "--base-url", server.url)
    assert code == 2
    assert "stopped after" in err and "run the same command again to resume" in err and NAME in err
    assert not (dest / NAME).exists()
    part = dest / f".{NAME}.part"
    assert 0 < part.stat().st_size < len(PAYLOAD)
    assert PAYLOAD.startswith(part.read_bytes())
    # the run itself retried twice, each time from what had arrived
    assert [r[1] is not None for r in server.requests] == [False, True, True]

    server.mode, server.requests, arrived = "normal", [], part.stat().st_size
    assert _run(capsys, dest, "--base-url", server.url)[0] == 0
    assert server.requests == [(NAME, f"bytes={arrived}-")]
    assert (dest / NAME).read_bytes() == PAYLOAD


def test_a_checksum_mismatch_is_kept_out_of_use_and_names_both_hashes(tmp_path, server, catalogue, capsys):
    tampered = bytearray(PAYLOAD)
    tampered[12345] ^= 0xFF
    server.files[NAME] = bytes(tampered)
    dest = tmp_path / "weights"
    code, _, err = _run(capsys, dest, "--base-url", server.url)
    assert code == 2
    assert hashlib.sha256(tampered).hexdigest() in err and PAYLOAD_SHA256 in err
    assert not (dest / NAME).exists() and not (dest / f".{NAME}.part").exists()
    rejected = dest / f".{NAME}.rejected"
    assert rejected.read_bytes() == bytes(tampered) and str(rejected) in err

    # a present file that went bad (same size, other bytes) is moved aside and fetched again
    server.files[NAME] = PAYLOAD
    assert _run(capsys, dest, "--base-url", server.url)[0] == 0
    (dest / NAME).write_bytes(bytes(tampered))
    server.requests = []
    code, out, err = _run(capsys, dest, "--base-url", server.url)
    assert code == 0 and server.requests == [(NAME, None)]
    assert (dest / NAME).read_bytes() == PAYLOAD


def test_verified_files_are_skipped_without_a_request_or_a_rehash_until_they_change(
        tmp_path, server, catalogue, capsys, monkeypatch):
    dest = tmp_path / "weights"
    assert _run(capsys, dest, "--base-url", server.url)[0] == 0
    server.requests = []
    hashed = []
    real_sha256 = weights.file_sha256
    monkeypatch.setattr(weights, "file_sha256", lambda path, *a: hashed.append(Path(path).name) or real_sha256(path, *a))
    code, out, _ = _run(capsys, dest, "--base-url", server.url)
    assert code == 0 and "unchanged since last check" in out
    assert server.requests == [] and hashed == []
    # a new mtime: hashed again (still the right bytes, so verified, and nothing fetched)
    stat = (dest / NAME).stat()
    os.utime(dest / NAME, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    code, out, _ = _run(capsys, dest, "--base-url", server.url)
    assert code == 0 and hashed == [NAME] and server.requests == []
    assert "unchanged" not in out


def test_offline_fails_at_once_saying_where_files_go(tmp_path, catalogue, capsys):
    dest = tmp_path / "weights"
    for base_url in (f"http://127.0.0.1:{_closed_port()}/", "http://weights-mirror.invalid/"):
        code, _, err = _run(capsys, dest, "--base-url", base_url, "--connect-timeout", "2")
        assert code == 2
        assert "offline" in err and "cannot be reached" in err
        assert f"{dest.resolve()}/" in err and NAME in err and str(len(PAYLOAD)) in err
        assert "--verify-only" in err and "sha256" in err
    assert not dest.exists() or not any(dest.iterdir())

    # the offline route: a copy fetched elsewhere, verified in place
    dest.mkdir(exist_ok=True)
    (dest / NAME).write_bytes(PAYLOAD)
    code, out, _ = _run(capsys, dest, "--verify-only")
    assert code == 0 and "verified" in out


def test_verify_only_reports_missing_files(tmp_path, catalogue, capsys):
    code, _, err = _run(capsys, tmp_path, "--verify-only")
    assert code == 2 and "missing" in err and "run without --verify-only" in err


def test_bad_names_are_refused(tmp_path, capsys):
    code, _, err = _run(capsys, tmp_path, "--files", "final_000_nothing")
    assert code == 2 and "unknown checkpoint 'final_000_nothing'" in err
    code, _, err = _run(capsys, tmp_path, "--imagenet", "resnet9000")
    assert code == 2 and "no published ImageNet weights file known for encoder 'resnet9000'" in err


def test_without_a_published_checksum_the_first_verified_copy_is_recorded_and_enforced(tmp_path, server):
    name = "encoder_without_checksum.pth"
    server.files[name] = PAYLOAD
    file = ReleasedFile(name, None, None, server.url + name, sha256_prefix=PAYLOAD_SHA256[:8], folder="imagenet")
    [check] = ensure_files([file], tmp_path)
    assert check.ok and check.first_use and check.sha256 == PAYLOAD_SHA256
    assert (tmp_path / "imagenet" / name).read_bytes() == PAYLOAD
    # another copy with other bytes: refused against the recorded sha256, and fetched again
    (tmp_path / "imagenet" / name).write_bytes(PAYLOAD[::-1])
    [check] = ensure_files([file], tmp_path, verify_only=True)
    assert not check.ok and PAYLOAD_SHA256 in check.problem and "recorded at its first download" in check.problem
    assert (tmp_path / "imagenet" / f".{name}.rejected").exists()
    # a file whose sha256 does not start with the published prefix is refused
    wrong = ReleasedFile("other.pth", None, None, server.url + "other.pth", sha256_prefix="00000000")
    server.files["other.pth"] = PAYLOAD
    [check] = ensure_files([wrong], tmp_path)
    assert not check.ok and "does not start with 00000000" in check.problem
    assert not (tmp_path / "other.pth").exists()


def test_imagenet_table_is_timms_published_files():
    import timm

    from models.classifier2d import ENCODERS

    assert set(IMAGENET_WEIGHTS) == set(ENCODERS)
    for encoder, file in IMAGENET_WEIGHTS.items():
        assert timm.models.get_pretrained_cfg(ENCODERS[encoder]).url == file.url, encoder
        assert file.folder == "imagenet" and file.url.endswith(f"-{file.sha256_prefix}.pth")


def test_winner_catalogue():
    assert len(WINNER_CHECKPOINTS) == 7 and len({f.name for f in WINNER_CHECKPOINTS}) == 7
    assert all(len(f.sha256) == 64 and f.url.endswith("/0.0.1/" + f.name) for f in WINNER_CHECKPOINTS)


def test_shell_wrapper_runs_the_module(tmp_path):
    result = subprocess.run([str(REPO / "download_weights.sh"), str(tmp_path / "w"), "--files", "nothing"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "unknown checkpoint 'nothing'" in result.stderr


def test_timm_pretrained_reads_the_downloaded_file_offline(tmp_path, monkeypatch):
    from models.classifier2d import DeepFakeClassifier
    from models.pretrained import PretrainedError, load_pretrained

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WEIGHTS_DIR", str(tmp_path))
    model = DeepFakeClassifier("tf_efficientnet_lite0")
    with pytest.raises(PretrainedError, match=r"run `\./download_weights\.sh --imagenet tf_efficientnet_lite0`"):
        load_pretrained(model, "timm", "tf_efficientnet_lite0")

    # a file as download_weights.sh leaves it: ImageNet weights with timm's key names, its head included
    load_pretrained(model, "lite0-package", "tf_efficientnet_lite0")
    path = tmp_path / "imagenet" / "tf_efficientnet_lite0-test.pth"
    path.parent.mkdir()
    torch.save({**model.encoder.state_dict(), "classifier.weight": torch.zeros(1000, 1280),
                "classifier.bias": torch.zeros(1000)}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(IMAGENET_WEIGHTS, "tf_efficientnet_lite0",
                        ReleasedFile(path.name, None, None, "https://github.invalid/" + path.name,
                                     sha256_prefix=digest[:8], folder="imagenet"))
    other = DeepFakeClassifier("tf_efficientnet_lite0")
    source = load_pretrained(other, "timm", "tf_efficientnet_lite0")
    assert source == f"{path} (verified)"
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, other.encoder.state_dict()[key]), key

    monkeypatch.setitem(IMAGENET_WEIGHTS, "tf_efficientnet_lite0",
                        ReleasedFile(path.name, None, None, "https://github.invalid/" + path.name,
                                     sha256_prefix="00000000", folder="imagenet"))
    (tmp_path / ".verified.json").unlink()
    with pytest.raises(PretrainedError, match="does not start with 00000000.*--imagenet tf_efficientnet_lite0"):
        load_pretrained(other, "timm", "tf_efficientnet_lite0")
