"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, without run-time downloads.

The package ships the linear heads (v0.1) in its wheel, but its VGG16 / AlexNet / SqueezeNet backbone comes from
torchvision's ImageNet weights, which are not downloadable here. :func:`load_lpips` uses a backbone file the user
gives, or the one in the torch hub cache (``torch.hub.get_dir()/checkpoints/<file>``), and otherwise returns
``None`` with the reason: it never triggers a download (the backbone is always built random, then loaded from the
file).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from semtok.errors import SemtokError
from semtok.metrics.pixel import to_uint8

BACKBONE_FILES = {
    "vgg": "vgg16-397923af.pth",
    "alex": "alexnet-owt-7be5be79.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


def hub_backbone_path(net: str) -> Path:
    """Where torchvision keeps the ImageNet backbone of ``net`` once downloaded: ``<hub dir>/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[net]


def _load_backbone(model: torch.nn.Module, path: Path) -> None:
    """Copy a torchvision state dict (``features.<i>.*`` keys) into lpips's ``net.slice<k>.<i>.*`` layers."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise SemtokError(
            f"LPIPS backbone '{path}': expected a torchvision state dict file: {error}"
        ) from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SemtokError(
            f"LPIPS backbone '{path}': expected a torchvision state dict, got {type(state).__name__}"
        )
    mapped = {}
    for name, target in model.net.state_dict().items():
        _, index_and_param = name.split(".", 1)  # "slice3.9.weight" -> "9.weight"
        source = f"features.{index_and_param}"
        if source not in state:
            raise SemtokError(
                f"LPIPS backbone '{path}': missing '{source}' (expected a torchvision {model.pnet_type})"
            )
        if state[source].shape != target.shape:
            raise SemtokError(
                f"LPIPS backbone '{path}': '{source}' has shape {tuple(state[source].shape)}, "
                f"expected {tuple(target.shape)}"
            )
        mapped[name] = state[source]
    model.net.load_state_dict(mapped, strict=True)


def load_lpips(
    net: str = "vgg", backbone_weights: str | Path | None = None, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module | None, str]:
    """(LPIPS v0.1 module in eval mode, description) or (None, reason) when no backbone weights are present.

    Args:
        net: "vgg" (the usual choice for reconstruction papers), "alex" or "squeeze".
        backbone_weights: a torchvision ImageNet state dict of that backbone (e.g. ``vgg16-397923af.pth``); None
            -> the file in the torch hub cache if it is there (see :func:`hub_backbone_path`).
        device: where the module is put.

    A given file that is missing or does not fit is an error (:class:`SemtokError`); a missing hub-cache file is
    not (LPIPS is then skipped by callers, with the reason).
    """
    if net not in BACKBONE_FILES:
        raise SemtokError(f"LPIPS net: expected one of {sorted(BACKBONE_FILES)}, got {net!r}")
    if backbone_weights is not None:
        path = Path(backbone_weights).expanduser()
        if not path.is_file():
            raise SemtokError(
                f"LPIPS backbone '{path}': file not found (expected a torchvision {net} state dict)"
            )
    else:
        path = hub_backbone_path(net)
        if not path.is_file():
            return (
                None,
                f"LPIPS skipped: no {net} backbone weights at {path} (pass a torchvision {net} state dict file)",
            )
    try:
        import lpips
    except ImportError:
        return None, "LPIPS skipped: the 'lpips' package is not installed (pip install lpips)"
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(pretrained=True, net=net, version="0.1", pnet_rand=True, verbose=False)
    _load_backbone(model, path)
    model.requires_grad_(False)
    return model.eval().to(device), f"LPIPS v0.1 {net}, backbone {path}"


@torch.no_grad()
def lpips_distance(
    model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, batch_size: int = 32
) -> torch.Tensor:
    """LPIPS per image, float32 [B] (>= 0; 0 for identical images), of two batches [B, 3, H, W].

    Images are uint8 or float in [-1, 1]; floats are first quantised with ``to_uint8`` (as for PSNR / SSIM), then
    mapped back to [-1, 1] (``u / 127.5 - 1``), the input range of ``lpips.LPIPS``.
    """
    if a.shape != b.shape or a.dim() != 4:
        raise SemtokError(
            f"lpips: expected two batches [B, 3, H, W] of one shape, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    device = next(model.parameters()).device
    out = []
    for start in range(0, a.shape[0], batch_size):
        x, y = (to_uint8(t[start : start + batch_size]).to(device).float() / 127.5 - 1.0 for t in (a, b))
        out.append(model(x, y).reshape(-1).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)
