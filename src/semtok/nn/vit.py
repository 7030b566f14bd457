"""Plain ViT building blocks: patch embedding, pre-norm transformer blocks, learned 2-D position embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from semtok.nn.attention import attention

VIT_SIZES: dict[str, tuple[int, int, int]] = {
    # name: (width, depth, heads)
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
}


def vit_size(name: str) -> tuple[int, int, int]:
    """(width, depth, heads) of a named ViT size."""
    if name not in VIT_SIZES:
        from semtok.errors import SemtokError

        raise SemtokError(f"unknown ViT size '{name}': expected one of {', '.join(VIT_SIZES)}")
    return VIT_SIZES[name]


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x_BNW: torch.Tensor) -> torch.Tensor:
        B, N, W = x_BNW.shape
        qkv = self.qkv(x_BNW).view(B, N, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        out = attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(B, N, W))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x_BNW: torch.Tensor) -> torch.Tensor:
        x_BNW = x_BNW + self.attn(self.norm1(x_BNW))
        return x_BNW + self.mlp(self.norm2(x_BNW))


class PositionEmbedding2D(nn.Module):
    """Learned position embeddings for a (grid x grid) token map, interpolated (bicubic) to other grids."""

    def __init__(self, grid: int, width: int) -> None:
        super().__init__()
        self.grid = grid
        self.weight = nn.Parameter(torch.randn(1, grid * grid, width) * 0.02)

    def forward(self, grid_hw: tuple[int, int]) -> torch.Tensor:
        """Embeddings [1, h*w, W] for a token grid of grid_hw."""
        if tuple(grid_hw) == (self.grid, self.grid):
            return self.weight
        W = self.weight.shape[-1]
        table = self.weight.reshape(1, self.grid, self.grid, W).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=grid_hw, mode="bicubic", align_corners=False)
        return table.permute(0, 2, 3, 1).reshape(1, grid_hw[0] * grid_hw[1], W)


class ViTEncoder(nn.Module):
    """Images [B, 3, H, W] in [-1, 1] -> patch tokens [B, h*w, width] (h = H // patch), final LayerNorm applied.

    ``cls_token``: a learned token [1, 1, width] (its position embedding folded in) runs through the blocks in
    front of the patch tokens and is dropped at the end (BEiT v2's VQ-KD ViTs); off by default.
    """

    def __init__(
        self, image_size: int, patch_size: int, width: int, depth: int, heads: int, cls_token: bool = False
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            from semtok.errors import SemtokError

            raise SemtokError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.patch_size = patch_size
        self.patch_embed = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)
        self.pos_embed = PositionEmbedding2D(image_size // patch_size, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width)) if cls_token else None
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)

    def forward(self, images_B3HW: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.patch_embed(images_B3HW)
        grid_hw = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2) + self.pos_embed(grid_hw)
        return self.norm(run_blocks(self.blocks, x, self.cls_token)), grid_hw


class ViTDecoder(nn.Module):
    """Token vectors [B, h*w, in_dim] -> [B, h*w, out_dim] through `depth` transformer blocks.

    ``cls_token`` as in :class:`ViTEncoder`; ``head``: ``"linear"`` (one Linear, the default) or ``"tanh_mlp"``
    (Linear(width, width) -> tanh -> Linear(width, out_dim), BEiT v2's ``decode_task_layer``).
    """

    def __init__(
        self,
        grid: int,
        in_dim: int,
        width: int,
        depth: int,
        heads: int,
        out_dim: int,
        cls_token: bool = False,
        head: str = "linear",
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, width)
        self.pos_embed = PositionEmbedding2D(grid, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width)) if cls_token else None
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        if head == "tanh_mlp":
            self.head: nn.Module = nn.Sequential(
                nn.Linear(width, width), nn.Tanh(), nn.Linear(width, out_dim)
            )
        else:
            self.head = nn.Linear(width, out_dim)

    def forward(self, x_BND: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        x = self.embed(x_BND) + self.pos_embed(grid_hw)
        return self.head(self.norm(run_blocks(self.blocks, x, self.cls_token)))


def run_blocks(blocks: nn.ModuleList, x_BNW: torch.Tensor, cls_token: torch.Tensor | None) -> torch.Tensor:
    """``x`` [B, N, W] through ``blocks``; with a ``cls_token`` [1, 1, W] it goes in front and is dropped after."""
    if cls_token is not None:
        x_BNW = torch.cat([cls_token.expand(x_BNW.shape[0], -1, -1).to(x_BNW.dtype), x_BNW], dim=1)
    for block in blocks:
        x_BNW = block(x_BNW)
    return x_BNW if cls_token is None else x_BNW[:, 1:]


def init_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) linear weights, zero biases, unit LayerNorms (BEiT / timm convention)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            nn.init.trunc_normal_(m.weight, std=math.sqrt(1.0 / fan_in))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
