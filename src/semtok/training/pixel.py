"""Train to reconstruct pixels: the VQGAN / CVQ-VAE / FSQ baselines, and pixel decoders for feature tokenizers.

One Accelerate loop for both. The generator is either a whole pixel tokenizer (``vqgan``, ``cvq``, ``fsq``) or a
frozen feature tokenizer (VQ-KD, Cluster) plus a new pixel decoder (``decoder``); the loss is
reconstruction (L1 or MSE) + perceptual + GAN (hinge, PatchGAN, switched on at ``loss.disc_start``) + the
quantizer's own loss.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from semtok.config import to_dict
from semtok.data import build_dataset
from semtok.errors import SemtokError
from semtok.hub.files import load_state_checked
from semtok.losses.gan import adaptive_gan_weight, hinge_d_loss, hinge_g_loss
from semtok.losses.perceptual import build_perceptual_loss
from semtok.metrics.codebook import code_histogram, codebook_stats
from semtok.nn.discriminator import PatchDiscriminator
from semtok.tokenizers.base import Tokenizer
from semtok.tokenizers.fsq import FSQConfig, FSQTokenizer
from semtok.tokenizers.pixel_decoder import PixelDecoderConfig
from semtok.tokenizers.vqgan import CVQConfig, CVQTokenizer, VQGANConfig, VQGANTokenizer
from semtok.training.checkpoint import load_checkpoint
from semtok.training.config import DataConfig, TrainConfig
from semtok.training.loop import (
    RunLog,
    batch_stream,
    checkpoint_if_due,
    finish_run,
    make_accelerator,
    open_run_dir,
)
from semtok.training.schedule import warmup_cosine_lr


@dataclass
class PixelLossConfig:
    """Reconstruction + perceptual + GAN. ``perceptual``: auto (LPIPS if its weights are present, else a
    perceptual loss on the offline EfficientNet-Lite0 teacher) | lpips | teacher | none."""

    reconstruction: str = "l1"  # l1 | mse
    perceptual: str = "auto"
    perceptual_weight: float = 1.0
    perceptual_size: int = 128  # the teacher perceptual loss reads images upsampled to at least this side
    lpips_weights: str | None = None
    gan_weight: float = 0.5
    adaptive_gan_weight: bool = False  # VQGAN's ||grad rec|| / ||grad gan|| at the last decoder layer
    disc_start: int = 20000
    disc_lr: float = 1e-4
    disc_channels: int = 64
    disc_layers: int = 3

    def __post_init__(self) -> None:
        if self.reconstruction not in ("l1", "mse"):
            raise SemtokError(
                f"config key 'loss.reconstruction': expected l1 or mse, got {self.reconstruction!r}"
            )
        if self.perceptual not in ("auto", "lpips", "teacher", "none"):
            raise SemtokError(
                f"config key 'loss.perceptual': expected auto, lpips, teacher or none, got {self.perceptual!r}"
            )


@dataclass
class VQGANRunConfig:
    model: VQGANConfig = field(default_factory=VQGANConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: PixelLossConfig = field(default_factory=PixelLossConfig)


@dataclass
class CVQRunConfig:
    model: CVQConfig = field(default_factory=CVQConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: PixelLossConfig = field(default_factory=PixelLossConfig)


@dataclass
class FSQRunConfig:
    model: FSQConfig = field(default_factory=FSQConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: PixelLossConfig = field(default_factory=PixelLossConfig)


@dataclass
class DecoderRunConfig:
    """A pixel decoder for the frozen feature tokenizer at ``tokenizer`` (a run or tokenizer folder)."""

    tokenizer: str = ""
    decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: PixelLossConfig = field(default_factory=lambda: PixelLossConfig(reconstruction="mse"))


RUN_CONFIGS: dict[str, type] = {
    "vqgan": VQGANRunConfig,
    "cvq": CVQRunConfig,
    "fsq": FSQRunConfig,
    "decoder": DecoderRunConfig,
}
MODELS: dict[str, type[Tokenizer]] = {"vqgan": VQGANTokenizer, "cvq": CVQTokenizer, "fsq": FSQTokenizer}


class DecoderStage(nn.Module):
    """A frozen feature tokenizer with a trainable pixel decoder: ``forward(images) -> (recon, ids, aux)``."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        for name, parameter in tokenizer.named_parameters():
            parameter.requires_grad_(name.startswith("pixel_decoder."))

    def train(self, mode: bool = True) -> DecoderStage:
        super().train(False)  # encoder and quantizer stay frozen, in eval mode
        self.tokenizer.pixel_decoder.train(mode)
        return self

    @property
    def last_layer(self) -> torch.Tensor:
        return self.tokenizer.pixel_decoder.last_layer

    def forward(self, images_B3HW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        with torch.no_grad():
            ids_BHW = self.tokenizer.encode(images_B3HW)
        recon = self.tokenizer.pixel_decode(ids_BHW)
        return recon, ids_BHW, {"loss": recon.new_zeros(())}


def attach_pixel_decoder(tokenizer_path: str, decoder: PixelDecoderConfig) -> Tokenizer:
    """Load a feature tokenizer and give it a freshly initialised pixel decoder (its grid and code dim checked)."""
    from semtok.tokenizers.base import resolve_tokenizer_dir

    if not tokenizer_path:
        raise SemtokError(
            "--tokenizer: the feature tokenizer (run or tokenizer folder) to train a decoder for"
        )
    base = Tokenizer.from_pretrained(resolve_tokenizer_dir(tokenizer_path))
    if not hasattr(base.config, "pixel_decoder"):
        raise SemtokError(f"'{tokenizer_path}' is a {base.kind} tokenizer: it reconstructs pixels already")
    grid = base.grid_size[0]
    decoder = dataclasses.replace(
        decoder, code_dim=base.quantizer.code_dim, grid=grid, image_size=base.config.image_size
    )
    tokenizer = type(base)(dataclasses.replace(base.config, pixel_decoder=decoder))
    state = {k: v for k, v in base.state_dict().items() if not k.startswith("pixel_decoder.")}
    state.update({k: v for k, v in tokenizer.state_dict().items() if k.startswith("pixel_decoder.")})
    load_state_checked(tokenizer, state, f"'{tokenizer_path}'")
    return tokenizer


def build_generator(kind: str, config: Any) -> tuple[nn.Module, Tokenizer, int]:
    """(trainable module, the tokenizer it trains, its image size)."""
    if kind == "decoder":
        tokenizer = attach_pixel_decoder(config.tokenizer, config.decoder)
        return DecoderStage(tokenizer), tokenizer, tokenizer.config.image_size
    tokenizer = MODELS[kind](config.model)
    return tokenizer, tokenizer, config.model.image_size


def reconstruction_loss(kind: str, recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(recon, images) if kind == "l1" else F.mse_loss(recon, images)


def train_pixel(
    kind: str,
    config: Any,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train a pixel tokenizer (``vqgan``/``cvq``/``fsq``) or a pixel ``decoder`` into ``out_dir``.

    Outputs as for VQ-KD: ``config.yaml``, ``checkpoints/``, ``tb/``, ``log.jsonl``, ``tokenizer/``, ``summary.json``.
    """
    if kind not in RUN_CONFIGS:
        raise SemtokError(f"unknown training kind '{kind}' (known: {', '.join(RUN_CONFIGS)})")
    out_dir = Path(out_dir)
    train, data, loss_cfg = config.train, config.data, config.loss
    accelerator = make_accelerator(train)
    main, world = accelerator.is_main_process, accelerator.num_processes
    if train.batch_size % world:
        raise SemtokError(f"train.batch_size {train.batch_size} is not divisible by the {world} processes")
    started = time.time()

    generator, tokenizer, image_size = build_generator(kind, config)
    train_set = build_dataset(
        data.dataset, "train", image_size, augment=data.augment, crop_scale=data.crop_scale, seed=train.seed
    )
    discriminator = PatchDiscriminator(3, loss_cfg.disc_channels, loss_cfg.disc_layers)
    perceptual, perceptual_name = (None, "none")
    if loss_cfg.perceptual != "none" and loss_cfg.perceptual_weight > 0:
        perceptual, perceptual_name = build_perceptual_loss(
            loss_cfg.perceptual, loss_cfg.lpips_weights, loss_cfg.perceptual_size
        )
        perceptual = perceptual.to(accelerator.device)

    saved = {"kind": kind, **to_dict(config), "perceptual_loss_used": perceptual_name}
    existing = open_run_dir(out_dir, resume, main, saved)

    gen_params = [p for p in generator.parameters() if p.requires_grad]
    opt_g = torch.optim.Adam(
        gen_params, lr=train.lr, betas=tuple(train.betas), weight_decay=train.weight_decay
    )
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=loss_cfg.disc_lr, betas=tuple(train.betas))
    start_step = 0
    if existing is not None:
        modules = {"model": tokenizer, "discriminator": discriminator}
        start_step = load_checkpoint(existing, modules, {"model": opt_g, "discriminator": opt_d}, kind=kind)[
            "step"
        ]
    generator, discriminator, opt_g, opt_d = accelerator.prepare(generator, discriminator, opt_g, opt_d)
    checkpointed = {"model": tokenizer, "discriminator": accelerator.unwrap_model(discriminator)}
    last_layer = accelerator.unwrap_model(generator).last_layer

    log = RunLog(out_dir, enabled=main)
    stream = batch_stream(
        train_set,
        train.batch_size,
        train.seed,
        start_step,
        accelerator.process_index,
        world,
        data.num_workers,
    )
    window_counts = torch.zeros(tokenizer.num_codes, dtype=torch.long)
    last_step = min(train.steps, stop_at) if stop_at else train.steps
    bar = tqdm(
        total=train.steps, initial=start_step, desc=kind, disable=not (main and progress), dynamic_ncols=True
    )
    generator.train()
    discriminator.train()
    step, values = start_step, {}
    while step < last_step:
        images, _, _ = next(stream)
        images = images.to(accelerator.device, non_blocking=True)
        lr = warmup_cosine_lr(step, train.lr, train.warmup_steps, train.steps, train.min_lr)
        for group in opt_g.param_groups:
            group["lr"] = lr
        gan_on = step >= loss_cfg.disc_start and loss_cfg.gan_weight > 0

        with accelerator.autocast():
            recon, ids, aux = generator(images)
        recon = recon.float()
        rec = reconstruction_loss(loss_cfg.reconstruction, recon, images)
        perc = perceptual(recon, images) if perceptual is not None else recon.new_zeros(())
        nll = rec + loss_cfg.perceptual_weight * perc
        loss = nll + aux["loss"]
        gan_weight = torch.zeros(())
        g_loss = recon.new_zeros(())
        if gan_on:
            g_loss = hinge_g_loss(discriminator(recon))
            gan_weight = (
                adaptive_gan_weight(nll, g_loss, last_layer) * loss_cfg.gan_weight
                if loss_cfg.adaptive_gan_weight
                else torch.tensor(loss_cfg.gan_weight)
            )
            loss = loss + gan_weight.to(loss.device) * g_loss
        if not torch.isfinite(loss):
            raise SemtokError(
                f"loss became {loss.item()} at step {step}: lower train.lr or use mixed_precision=no"
            )
        opt_g.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if train.grad_clip > 0:
            accelerator.clip_grad_norm_(gen_params, train.grad_clip)
        opt_g.step()

        d_loss = torch.zeros(())
        if gan_on:
            d_loss = hinge_d_loss(discriminator(images), discriminator(recon.detach()))
            opt_d.zero_grad(set_to_none=True)
            accelerator.backward(d_loss)
            opt_d.step()

        step += 1
        window_counts += code_histogram(ids.detach(), tokenizer.num_codes)
        if step % train.log_every == 0 or step == last_step:
            stats = codebook_stats(window_counts)
            window_counts.zero_()
            values = {
                "loss/total": loss.item(),
                "loss/reconstruction": rec.item(),
                "loss/perceptual": float(perc.detach()),
                "loss/gan_generator": float(g_loss.detach()),
                "loss/discriminator": float(d_loss.detach()),
                "gan_weight": float(gan_weight),
                "codebook/usage_window": stats["usage"],
                "codebook/perplexity_window": stats["perplexity"],
                "lr": lr,
            }
            log.scalars(step, values)
            bar.set_postfix(
                rec=f"{rec.item():.4f}", perc=f"{float(perc.detach()):.3f}", usage=f"{stats['usage']:.2f}"
            )
        bar.update(1)
        checkpoint_if_due(
            accelerator,
            out_dir,
            step,
            last_step,
            train,
            checkpointed,
            {"model": opt_g, "discriminator": opt_d},
            {"kind": kind, "world_size": world},
        )
    bar.close()
    log.close()
    accelerator.wait_for_everyone()

    summary: dict[str, Any] = {}
    if main and step < train.steps:
        summary = {"kind": kind, "stopped_at_step": step, "steps": train.steps, "tokenizer": None}
    elif main:
        summary = finish_run(
            out_dir,
            kind,
            tokenizer,
            train,
            start_step if resume else None,
            started,
            train_set,
            accelerator,
            final_losses=values,
            perceptual_loss=perceptual_name,
        )
    return summary
