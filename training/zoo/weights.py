"""The released checkpoints this project knows: names, sizes, sha256 and where they are published.

The DFDC winner published seven B7 checkpoints (release ``0.0.1`` of selimsef/dfdc_deepfake_challenge);
the checksums are the ones recorded in a public Git LFS copy of the same files.
"""

from __future__ import annotations

from dataclasses import dataclass

WINNER_RELEASE_URL = "https://github.com/selimsef/dfdc_deepfake_challenge/releases/download/0.0.1/"


@dataclass(frozen=True)
class ReleasedFile:
    name: str
    size_bytes: int
    sha256: str
    url: str


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
