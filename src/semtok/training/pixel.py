"""The pixel stage: the VQGAN / CVQ-VAE / FSQ baselines, and pixel decoders for feature tokenizers.

The trained model is either a whole pixel tokenizer (``vqgan``, ``cvq``, ``fsq``) or a frozen feature tokenizer
(VQ-KD, Cluster) with a new pixel decoder (``decoder``); the loss (:class:`~semtok.losses.pixel.PixelLoss`) is
reconstruction + perceptual + GAN + the quantizer's own loss, with two optimizers (model and discriminator).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, make_dataclass
from typing import Any

import torch
from torch import nn

from semtok.data.config import DataConfig
from semtok.errors import SemtokError
from semtok.hub.files import load_state_checked
from semtok.hub.pretrained import resolve_model_dir
from semtok.losses.pixel import PixelLoss, PixelLossConfig
from semtok.tokenizers.base import Tokenizer, eval_mode
from semtok.tokenizers.fsq import FSQConfig, FSQTokenizer
from semtok.tokenizers.pixel_decoder import PixelDecoderConfig
from semtok.tokenizers.vqgan import CVQConfig, CVQTokenizer, VQGANConfig, VQGANTokenizer
from semtok.training.batches import map_in_order
from semtok.training.config import TrainConfig
from semtok.training.engine import Engine, Setup, Stage
from semtok.training.optim import build_optimizer


def _adam_train() -> TrainConfig:
    return TrainConfig(optimizer="adam")


def _baseline_run_config(name: str, model_config: type) -> type:
    """The run config of a pixel baseline: sections model (its tokenizer config), train, data, loss."""
    return make_dataclass(
        name,
        [
            ("model", model_config, field(default_factory=model_config)),
            ("train", TrainConfig, field(default_factory=_adam_train)),
            ("data", DataConfig, field(default_factory=DataConfig)),
            ("loss", PixelLossConfig, field(default_factory=PixelLossConfig)),
        ],
    )


VQGANRunConfig = _baseline_run_config("VQGANRunConfig", VQGANConfig)
CVQRunConfig = _baseline_run_config("CVQRunConfig", CVQConfig)
FSQRunConfig = _baseline_run_config("FSQRunConfig", FSQConfig)


@dataclass
class DecoderRunConfig:
    """A pixel decoder for the frozen feature tokenizer at ``tokenizer`` (a run or tokenizer folder)."""

    tokenizer: str = ""
    decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    train: TrainConfig = field(default_factory=_adam_train)
    data: DataConfig = field(default_factory=DataConfig)
    loss: PixelLossConfig = field(default_factory=lambda: PixelLossConfig(reconstruction="mse"))


RUN_CONFIGS: dict[str, type] = {
    "vqgan": VQGANRunConfig,
    "cvq": CVQRunConfig,
    "fsq": FSQRunConfig,
    "decoder": DecoderRunConfig,
}
MODELS: dict[str, type[Tokenizer]] = {"vqgan": VQGANTokenizer, "cvq": CVQTokenizer, "fsq": FSQTokenizer}


class FrozenEncoderDecoder(nn.Module):
    """A frozen feature tokenizer with a trainable pixel decoder: ``forward(images) -> (recon, ids, aux)``."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        for name, parameter in tokenizer.named_parameters():
            parameter.requires_grad_(name.startswith("pixel_decoder."))

    def train(self, mode: bool = True) -> FrozenEncoderDecoder:
        super().train(False)  # encoder and quantizer stay frozen, in eval mode
        self.tokenizer.pixel_decoder.train(mode)
        return self

    @property
    def last_layer(self) -> torch.Tensor:
        return self.tokenizer.pixel_decoder.last_layer

    def forward(
        self, images_B3HW: torch.Tensor, ids_BHW: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """``ids_BHW``: the frozen tokenizer's ids of these images when already known (the stage's id cache)."""
        if ids_BHW is None:
            with torch.no_grad():
                ids_BHW = self.tokenizer.encode(images_B3HW)
        recon = self.tokenizer.pixel_decode(ids_BHW)
        return recon, ids_BHW, {"loss": recon.new_zeros(())}


def attach_pixel_decoder(tokenizer_path: str, decoder: PixelDecoderConfig) -> Tokenizer:
    """Load a feature tokenizer and give it a freshly initialised pixel decoder (its grid and code dim checked)."""
    if not tokenizer_path:
        raise SemtokError("config key 'tokenizer': the feature tokenizer (run or tokenizer folder) to decode")
    base = Tokenizer.from_pretrained(resolve_model_dir(tokenizer_path, "tokenizer"))
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


class PixelStage(Stage):
    """``name``: vqgan | cvq | fsq (train the whole tokenizer) or decoder (a pixel decoder for a frozen one)."""

    config_classes = RUN_CONFIGS

    def __init__(self, config: Any, name: str) -> None:
        if name not in RUN_CONFIGS:
            raise SemtokError(f"unknown pixel stage '{name}' (known: {', '.join(RUN_CONFIGS)})")
        super().__init__(config, name)

    def saved_config(self) -> dict[str, Any]:
        return {**super().saved_config(), "perceptual_loss_used": self.loss.perceptual_name}

    def setup(self, engine: Engine) -> Setup:
        config, train = self.config, self.config.train
        if self.name == "decoder":
            self.tokenizer = attach_pixel_decoder(config.tokenizer, config.decoder)
            trained: nn.Module = FrozenEncoderDecoder(self.tokenizer)
        else:
            self.tokenizer = trained = MODELS[self.name](config.model)
        train_set = self.train_set = self.image_train_set(self.tokenizer.config.image_size)
        self.loss = PixelLoss(config.loss).to(engine.device)
        self.last_layer = trained.last_layer
        return Setup(
            train_set=train_set,
            modules={"model": trained, "discriminator": self.loss.discriminator},
            optimizers={
                "model": build_optimizer(trained, train),
                "discriminator": build_optimizer(
                    self.loss.discriminator, train, lr=config.loss.disc_lr, weight_decay=0.0
                ),
            },
            checkpointed={"model": self.tokenizer, "discriminator": self.loss.discriminator},
            scheduled=("model",),  # the discriminator keeps loss.disc_lr
            clipped=("model",),  # and is not clipped (VQGAN's recipe)
            num_codes=self.tokenizer.num_codes,
            progress=("loss/reconstruction", "loss/perceptual", "codebook/usage_window"),
        )

    def after_resume(self, engine: Engine) -> None:
        """A pixel decoder's frozen tokenizer gives every train image the same ids at every step when nothing
        random changes the images: encode the split once (VQ-KD: its ViT; Cluster: the teacher) instead of once
        per step. Augmented data, shards, or ids over ``train.max_cache_gb`` are encoded every step."""
        self.ids_cache = None
        train_set = self.train_set
        if (
            self.name != "decoder"
            or self.config.data.augment != "none"
            or getattr(train_set, "is_stream", False)
            or len(train_set) * self.tokenizer.grid_size[0] * self.tokenizer.grid_size[1] * 4 / 1e9
            > self.config.train.max_cache_gb
        ):
            return
        show = engine.is_main and engine.show_progress
        encoder = self.tokenizer.to(engine.device)
        with eval_mode(encoder):
            self.ids_cache = map_in_order(
                lambda images: encoder.encode(images).to(torch.int32),
                train_set,
                256,
                engine.device,
                show,
                "token cache",
            )

    def step(self, batch: tuple[torch.Tensor, ...], engine: Engine) -> dict[str, Any]:
        images = batch[0].to(engine.device, non_blocking=True)
        step = engine.step_index
        ids = None if self.ids_cache is None else self.ids_cache[batch[2]].long().to(engine.device)
        with engine.accelerator.autocast():
            recon, ids, aux = (
                engine.modules["model"](images, ids) if ids is not None else engine.modules["model"](images)
            )
        recon = recon.float()
        loss, parts = self.loss.generator_loss(recon, images, aux["loss"], step, self.last_layer)
        engine.optimize("model", loss)
        d_loss = torch.zeros(())
        if self.loss.gan_on(step):
            d_loss = self.loss.discriminator_loss(engine.modules["discriminator"], images, recon)
            engine.optimize("discriminator", d_loss)
        return {
            "loss/total": loss.detach(),
            "loss/reconstruction": parts["reconstruction"].detach(),
            "loss/perceptual": parts["perceptual"].detach(),
            "loss/gan_generator": parts["gan_generator"].detach(),
            "loss/discriminator": d_loss.detach(),
            "gan_weight": parts["gan_weight"],
            "ids": ids,
        }

    def finish(self, engine: Engine) -> tuple[Tokenizer, dict[str, Any]]:
        return self.tokenizer, {"perceptual_loss": self.loss.perceptual_name}

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        return [
            f"tokenizer: {summary['tokenizer']}",
            f"perceptual loss: {summary['perceptual_loss']}; skipped files: {summary['skipped_files']}",
        ]
