"""One device / precision vocabulary for preprocessing, training and prediction."""

from __future__ import annotations

import pytest
import torch

from core.devices import DeviceError, gpu_shortage, main, resolve_device, resolve_precision

NO_CUDA = not torch.cuda.is_available()


def test_precision_words_and_their_dtypes():
    assert resolve_precision("auto", "cpu") == torch.float32
    assert resolve_precision("auto", "cpu", training=True) == torch.float32
    assert resolve_precision("fp32", "cpu") == resolve_precision("none", "cpu") == torch.float32
    assert resolve_precision("auto", "cuda") == torch.float16  # prediction: the winner's fp16
    assert resolve_precision("bf16", "cuda:0") == torch.bfloat16
    assert resolve_precision("fp16", "cuda", training=True) == torch.float16
    for word in ("fp16", "bf16"):
        with pytest.raises(DeviceError, match=f"precision {word} needs a GPU; on cpu use fp32"):
            resolve_precision(word, "cpu")
    with pytest.raises(DeviceError, match="unknown precision 'fp8'.*none = fp32"):
        resolve_precision("fp8", "cuda")


@pytest.mark.skipif(not NO_CUDA, reason="checks the messages of a machine without CUDA")
def test_devices_on_a_machine_without_cuda(capsys):
    assert resolve_device("auto") == resolve_device("auto", local_rank=1) == resolve_device("cpu") == "cpu"
    for device in ("cuda", "cuda:1"):
        with pytest.raises(DeviceError, match=f"--device {device} was asked for but CUDA is not available"):
            resolve_device(device)
    with pytest.raises(DeviceError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    assert gpu_shortage(0) is None
    assert "NUM_GPUS=1 but this machine has no CUDA GPU" in gpu_shortage(1)
    assert main(["--need-gpus", "0"]) == 0
    assert main(["--need-gpus", "4"]) == 2
    assert "NUM_GPUS=4" in capsys.readouterr().err


def test_training_precision_this_device_lacks_fails_before_any_work(preprocessed_root, tmp_path, capsys):
    from training.pipelines.train_classifier import main as train_main

    if not NO_CUDA:
        pytest.skip("checks the CPU message")
    code = train_main(["--data-dir", str(preprocessed_root), "--output-dir", str(tmp_path / "w"), "--device", "cpu",
                       "--set", "encoder=tf_efficientnet_lite0", "--set", "pretrained=null", "--set", "amp=bf16"])
    assert code == 2
    assert "precision bf16 needs a GPU" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
    code = train_main(["--data-dir", str(preprocessed_root), "--output-dir", str(tmp_path / "w"), "--device", "cuda"])
    assert code == 2 and "CUDA is not available" in capsys.readouterr().err
