"""Training benchmark: the data pipeline per worker against the original per-sample procedure, CPU
train steps/s with a small encoder, and (where a GPU exists) B7 at 380 px in three precisions.

Data pipeline, both in one process on the same crops with the same cutout probabilities and the same
albumentations pipeline:

* ours: ``DeepFakeClassifierDataset`` (cutouts from the stored 5- and 68-point landmarks, lines drawn
  thick in one pass, FancyPCA from a strided pixel subset applied as a lookup table, uint8 tensors
  out, normalised on the device by the training loop);
* baseline, the original recipe's procedure: the dlib frontal face detector and 68-point predictor run
  on the crop whenever the hull cutout is drawn, cutout lines widened by iterated binary dilation, the
  bit masks rebuilt for every sample, FancyPCA on every pixel in float64, float32 normalisation in the
  worker.

    python bench/train.py --data-dir DATA_ROOT [--write-docs docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

# one loader worker = one core: no BLAS/OpenMP thread pools (set before numpy loads them)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import torch  # noqa: E402

from bench.common import machine_description, write_section  # noqa: E402
from core.input_spec import InputSpec  # noqa: E402
from faces.landmarks import shape_predictor_path  # noqa: E402
from training.datasets.classifier_dataset import DeepFakeClassifierDataset, read_folds  # noqa: E402
from training.transforms.augmentations import FancyPCA, image_to_tensor, train_transform_list  # noqa: E402

SECTION = "## Training"
GPU_FEED_RATES = (100, 200, 400)  # images/s a GPU might consume, for the workers-needed table


# ---- the original per-sample procedure (baseline) -------------------------------------------------
class OriginalFancyPCA(A.ImageOnlyTransform):
    """The recipe's FancyPCA as it ran: float64 covariance of every pixel, float image, clip, cast."""

    def __init__(self, alpha: float = 0.1, p: float = 0.5):
        super().__init__(p=p)
        self.alpha = alpha

    def get_params(self) -> dict:
        return {"alpha_value": float(self.random_generator.normal(0.0, self.alpha))}

    def apply(self, img, alpha_value=0.0, **params):
        out = img.astype(float)
        pixels = (img / 255.0).reshape(-1, 3)
        eigvals, eigvecs = np.linalg.eigh(np.cov(pixels - pixels.mean(axis=0), rowvar=False))
        shift = eigvecs @ (alpha_value * eigvals)
        for channel in range(3):
            out[..., channel] += shift[channel] * 255
        return np.clip(out, 0.0, 255.0).astype(np.uint8)


def original_transforms(size: int, seed: int) -> A.Compose:
    """The same list with the recipe's FancyPCA in place of ours."""
    transforms = train_transform_list(InputSpec(size_px=size))
    for transform in transforms:
        if isinstance(transform, A.OneOf):
            transform.transforms = [OriginalFancyPCA() if isinstance(t, FancyPCA) else t for t in transform.transforms]
    return A.Compose(transforms, seed=seed)


class BaselineSampler:
    """The original recipe's sample preparation, kept to its costs: detector at training time,
    iterated dilation, per-sample bit masks."""

    def __init__(self, dataset: DeepFakeClassifierDataset, size: int, seed: int = 0):
        import dlib

        self.dataset = dataset
        self.spec = InputSpec(size_px=size)
        self.transforms = original_transforms(size, seed)
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(shape_predictor_path()))
        self.random = random.Random(seed)
        self.hull_calls = 0

    @staticmethod
    def _dilated_line(image, p1, p2, dilation):
        from scipy.ndimage import binary_dilation

        mask = np.zeros(image.shape[:2], dtype=np.uint8)
        mask = cv2.line(mask, tuple(int(v) for v in p1), tuple(int(v) for v in p2), color=1, thickness=2)
        line = binary_dilation(mask, iterations=dilation) if dilation > 0 else mask.astype(bool)
        out = image.copy()
        out[line, :] = 0
        return out

    def _remove_landmark(self, image, lm):
        eye_width = float(np.hypot(*(lm[1] - lm[0])))
        mouth_width = float(np.hypot(*(lm[4] - lm[3])))
        if self.random.random() > 0.5:
            return self._dilated_line(image, lm[0], lm[1], int(eye_width // 4))
        if self.random.random() > 0.5:
            return self._dilated_line(image, lm[3], lm[4], int(mouth_width // 3))
        if self.random.random() > 0.5:
            return self._dilated_line(image, lm[2], (lm[3] + lm[4]) / 2, int(mouth_width // 4))
        return image

    def _blackout_hull(self, image):
        from skimage import draw, measure

        self.hull_calls += 1
        try:
            rect = self.detector(image)[0]
            shape = self.predictor(image, rect)
            points = np.array([[p.x, p.y] for p in shape.parts()])
            outline = points[[*range(17), *range(26, 16, -1)]]
            ys, xs = draw.polygon(outline[:, 1], outline[:, 0])
            mask = np.zeros(image.shape[:2], dtype=np.uint8)
            mask[np.clip(ys, 0, image.shape[0] - 1), np.clip(xs, 0, image.shape[1] - 1)] = 1
            cy, cx = (int(v) for v in measure.centroid(mask))
            first = self.random.random() > 0.5
            if self.random.random() > 0.5:
                mask[(slice(None, cy) if first else slice(cy, None)), :] = 0
            else:
                mask[:, (slice(None, cx) if first else slice(cx, None))] = 0
            image = image.copy()
            image[mask > 0] = 0
        except IndexError:  # no face found: the original left the image as it was
            pass
        return image

    @staticmethod
    def _bit_masks(mask):
        h, w = mask.shape
        mid_h, mid_w = h // 2, w // 2
        masks = []
        for region in [(slice(None, mid_h), slice(None)), (slice(mid_h, None), slice(None)),
                       (slice(None), slice(None, mid_w)), (slice(None), slice(mid_w, None)),
                       (slice(None, mid_h), slice(None, mid_w)), (slice(None, mid_h), slice(mid_w, None)),
                       (slice(mid_h, None), slice(None, mid_w)), (slice(mid_h, None), slice(mid_w, None))]:
            ones = np.ones_like(mask)
            ones[region] = 0
            masks.append(ones)
        return masks

    def __call__(self, index: int):
        video, frame, face, label, original = self.dataset.items[index]
        layout = self.dataset.layout
        image = cv2.cvtColor(cv2.imread(str(layout.crop_path(video, frame, face))), cv2.COLOR_BGR2RGB)
        mask = np.zeros(image.shape[:2], dtype=np.uint8)
        if label >= 0.5:
            diff = cv2.imread(str(layout.diff_path(video, frame, face)), cv2.IMREAD_GRAYSCALE)
            if diff is not None and diff.shape == mask.shape:
                mask = diff
        landmark_path = layout.landmarks_path(original, frame, face)
        if landmark_path.is_file() and self.random.random() < 0.7:
            image = self._remove_landmark(image, np.load(landmark_path))
        elif self.random.random() < 0.2:
            image = self._blackout_hull(image)
        elif self.random.random() < 0.1:
            masks = self._bit_masks((mask > 0.4 * 255).astype(np.uint8))
            for _ in range(5):
                keep = self.random.choice(masks)
                if label < 0.5 or np.count_nonzero(mask * keep) > 20:
                    image = image * np.expand_dims(keep, -1)
                    break
        self.transforms.set_random_seed(self.random.randrange(2 ** 31))
        image = self.transforms(image=image)["image"]
        return image_to_tensor(image, self.spec)  # float normalisation in the worker, as the recipe's loader did


# ---- measurements --------------------------------------------------------------------------------
def timed(fn, indices) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for fn over indices."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in indices:
        fn(i)
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_data(data_root: Path, size: int, count: int, rounds: int) -> dict:
    """Both pipelines on the same items, alternating in chunks so a change of machine load hits both;
    rates from wall time and from this process's CPU time (steadier on a shared machine)."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    folds = read_folds(data_root)
    dataset = DeepFakeClassifierDataset(data_root, folds, "train", InputSpec(size_px=size), seed=0)
    dataset.set_epoch(0)
    n_items = len(dataset)
    baseline = BaselineSampler(dataset, size)
    warm = range(min(5, n_items))
    timed(lambda i: dataset[i], warm)
    timed(baseline, warm)
    totals = {"ours": [0.0, 0.0], "baseline": [0.0, 0.0]}
    ratios = []
    for round_index in range(rounds):
        indices = [(round_index * count + i) % n_items for i in range(count)]
        ours = timed(lambda i: dataset[i], indices)
        base = timed(baseline, indices)
        for key, (wall, cpu) in (("ours", ours), ("baseline", base)):
            totals[key][0] += wall
            totals[key][1] += cpu
        ratios.append(base[1] / ours[1])
    n = count * rounds
    crop_px = [cv2.imread(str(dataset.layout.crop_path(*item[:3]))).shape[0] for item in dataset.items[:20]]
    return {"ours_wall": n / totals["ours"][0], "ours_cpu": n / totals["ours"][1],
            "baseline_wall": n / totals["baseline"][0], "baseline_cpu": n / totals["baseline"][1],
            "ratio_median": float(np.median(ratios)), "items": n_items, "count": count, "rounds": rounds,
            "hull_calls": baseline.hull_calls, "crop_px": int(np.median(crop_px))}


def bench_cpu_steps(encoder: str, size: int, batch: int, steps: int, threads: int) -> float:
    from models.classifier2d import DeepFakeClassifier

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = DeepFakeClassifier(encoder).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 3, size, size)
    labels = (torch.arange(batch) % 2).float()

    def step():
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(images).squeeze(1), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def _train_step(model, optimizer, scaler, images, labels, dtype) -> None:
    with torch.autocast(images.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        logits = model(images)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float().squeeze(1), labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()


def train_rate(encoder: str, size: int, batch: int, steps: int, dtype, channels_last: bool,
               device: str = "cuda", warmup: int = 5) -> tuple[float, float | None]:
    """(images/s, peak GPU memory GiB or None on the CPU) of the recipe's training step (SGD nesterov,
    grad clipping, a grad scaler with fp16) on random inputs."""
    from models.classifier2d import DeepFakeClassifier

    on_gpu = device.startswith("cuda")
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = DeepFakeClassifier(encoder, drop_path_rate=0.2).to(device).train().to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=dtype == torch.float16)
    images = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    labels = (torch.arange(batch, device=device) % 2).float()
    for _ in range(warmup):
        _train_step(model, optimizer, scaler, images, labels, dtype)
    if on_gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        _train_step(model, optimizer, scaler, images, labels, dtype)
    if on_gpu:
        torch.cuda.synchronize()
    rate = steps * batch / (time.perf_counter() - start)
    return rate, (torch.cuda.max_memory_allocated() / 2 ** 30 if on_gpu else None)


PRECISION_ROWS = (("fp32", None, False), ("fp16 autocast, NCHW", torch.float16, False),
                  ("bf16 autocast, channels_last", torch.bfloat16, True))


def bench_precisions(encoder: str, size: int, batch: int, steps: int, device: str = "cuda",
                     warmup: int = 5) -> list[tuple[str, float, float | None]]:
    """images/s and peak GiB for fp32, fp16 autocast (NCHW, grad scaler), bf16 autocast + channels_last."""
    torch.backends.cudnn.benchmark = True
    return [(label, *train_rate(encoder, size, batch, steps, dtype, channels_last, device, warmup))
            for label, dtype, channels_last in PRECISION_ROWS]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, type=Path, help="preprocessed DATA_ROOT (folds.csv, crops)")
    parser.add_argument("--size", type=int, default=380, help="training input size in px (B7: 380)")
    parser.add_argument("--samples", type=int, default=25, help="samples per pipeline and round")
    parser.add_argument("--rounds", type=int, default=12, help="rounds, the pipelines alternating")
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--write-docs", type=Path, default=None)
    args = parser.parse_args(argv)

    machine = machine_description()
    data = bench_data(args.data_dir, args.size, args.samples, args.rounds)
    speedup = data["ours_cpu"] / data["baseline_cpu"]
    cpu_rows = []
    for encoder, size, batch in [("tf_efficientnet_lite0", 128, 16), ("tf_efficientnet_b0_ns", 224, 8)]:
        cpu_rows.append((encoder, size, batch, bench_cpu_steps(encoder, size, batch, 5, args.cpu_threads)))
    gpu_rows = bench_precisions("tf_efficientnet_b7_ns", 380, 12, 20) if torch.cuda.is_available() else None

    body = [f"Command: `python bench/train.py --data-dir DATA_ROOT --write-docs docs/benchmarks.md` "
            f"(DATA_ROOT: the preprocessed default sample set, `python -m sample_data.make_sample_dataset` + "
            f"`./preprocess_data.sh`). Machine: {machine}.", "",
            f"Data pipeline, one process = one loader worker (1 thread), {args.size} px output, "
            f"{data['items']} crops of about {data['crop_px']} px, {args.rounds} rounds of {args.samples} "
            f"samples, the two pipelines alternating round by round:", "",
            "| pipeline | samples per CPU-second | samples/s (wall) |", "|---|---|---|",
            f"| ours: stored 68-point landmarks, one-pass thick lines, lookup-table FancyPCA, uint8 out "
            f"(normalised on the device) | {data['ours_cpu']:.1f} | {data['ours_wall']:.1f} |",
            f"| baseline: dlib detector + predictor on each hull cutout ({data['hull_calls']} calls), "
            f"iterated binary dilation, bit masks rebuilt per sample, full-image float64 FancyPCA, "
            f"float normalisation in the worker | {data['baseline_cpu']:.1f} | {data['baseline_wall']:.1f} |",
            f"| speed-up | {speedup:.2f}x (median of the rounds: {data['ratio_median']:.2f}x) | "
            f"{data['ours_wall'] / data['baseline_wall']:.2f}x |", "",
            "Loader workers needed to keep one GPU fed (GPU images/s / samples per CPU-second, rounded up: "
            "one worker per free core); "
            "the GPU rate is not measured here, so three rates are shown:", "",
            "| GPU consumes | workers (ours) | workers (baseline) |", "|---|---|---|"]
    for rate in GPU_FEED_RATES:
        body.append(f"| {rate} img/s | {int(np.ceil(rate / data['ours_cpu']))} | "
                    f"{int(np.ceil(rate / data['baseline_cpu']))} |")
    body += ["", f"Training steps on the CPU ({args.cpu_threads} threads, AdamW, fp32, random inputs):", "",
             "| encoder | size px | batch | steps/s | images/s |", "|---|---|---|---|---|"]
    for encoder, size, batch, rate in cpu_rows:
        body.append(f"| {encoder} | {size} | {batch} | {rate:.2f} | {rate * batch:.1f} |")
    body += ["", "B7 at 380 px, batch 12, SGD + grad clipping, one GPU:", "",
             "| precision | images/s | peak memory GiB |", "|---|---|---|"]
    if gpu_rows:
        for label, rate, memory in gpu_rows:
            body.append(f"| {label} | {rate:.1f} | {memory:.1f} |")
        body.append(f"\nbf16 + channels_last vs fp16 NCHW: {gpu_rows[2][1] / gpu_rows[1][1]:.2f}x")
    else:
        for label, _, _ in PRECISION_ROWS:
            body.append(f"| {label} | not measured (no GPU here) | not measured (no GPU here) |")
        body.append("\nOn a GPU machine `bench/gpu_check.sh` measures these rows (section GPU check below).")
    end_load = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"
    body += ["", f"Load average at the end: {end_load}. On a shared machine the absolute rates drop with the "
             f"load; CPU-seconds of the benchmark process are much less affected, so the data pipeline is compared on "
             f"them."]
    print("\n".join(body))
    if args.write_docs:
        write_section(args.write_docs, SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
