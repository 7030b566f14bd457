"""The online Cluster stage (the paper's recipe): a frozen teacher, only the codebook trains.

Each step: teacher patch features of the batch, l2-normalised -> nearest code by cosine
(:class:`~semtok.quantizers.online_codebook.OnlineCodebook`) -> codebook loss -> AdamW on the codebook. Codes that
no feature picked for ``codebook.reseed_steps`` consecutive steps are re-seeded from random features of the
batch. The codebook starts from k-means (``model.kmeans_iters`` iterations, cosine) on the first batch. Under
several processes the counts are all-reduced and re-seed vectors come from rank 0, so every process keeps an
identical codebook (its gradient is all-reduced by DDP). The result is a ``ClusterTokenizer`` folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from semtok.data.config import DataConfig
from semtok.errors import SemtokError
from semtok.quantizers.online_codebook import OnlineCodebook
from semtok.teachers.config import build_resolved_teacher
from semtok.tokenizers.cluster import ClusterConfig, ClusterTokenizer
from semtok.training.config import TrainConfig
from semtok.training.engine import Engine, Setup, Stage
from semtok.training.optim import build_optimizer


@dataclass
class OnlineCodebookConfig:
    """Re-seeding of unused codes (the paper's Cluster recipe)."""

    reseed_steps: int = 100  # re-seed a code no feature picked for this many consecutive steps; 0: never

    def __post_init__(self) -> None:
        if self.reseed_steps < 0:
            raise SemtokError(
                f"config key 'codebook.reseed_steps': expected an int >= 0, got {self.reseed_steps}"
            )


@dataclass
class ClusterTrainRunConfig:
    """Everything ``semtok train cluster`` needs; the YAML file has these four sections."""

    model: ClusterConfig = field(default_factory=ClusterConfig)
    codebook: OnlineCodebookConfig = field(default_factory=OnlineCodebookConfig)
    # The paper's codebook-loss recipe: no weight decay, no gradient clipping.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(weight_decay=0.0, grad_clip=0.0))
    data: DataConfig = field(default_factory=DataConfig)


class ClusterOnlineStage(Stage):
    config_class = ClusterTrainRunConfig

    def setup(self, engine: Engine) -> Setup:
        model, train = self.config.model, self.config.train
        teacher, teacher_config = build_resolved_teacher(model.teacher)
        model = dataclasses.replace(model, teacher=teacher_config)
        self.config = dataclasses.replace(self.config, model=model)
        self.teacher = teacher.to(engine.device)
        train_set = self.image_train_set(model.image_size)
        self.codebook = OnlineCodebook(model.num_codes, model.teacher.dim, model.kmeans_iters)
        self.reseeded_total = 0
        return Setup(
            train_set=train_set,
            modules={"codebook": self.codebook},
            optimizers={"codebook": build_optimizer(self.codebook, train)},
            num_codes=model.num_codes,
            progress=("loss/codebook", "cosine", "codebook/usage_window"),
        )

    def step(self, batch: tuple[torch.Tensor, ...], engine: Engine) -> dict[str, Any]:
        with torch.no_grad(), engine.accelerator.autocast():  # the teacher in the run's precision, no graph
            features = self.teacher(batch[0].to(engine.device, non_blocking=True))
        x = F.normalize(features.permute(0, 2, 3, 1).reshape(-1, features.shape[1]).float(), dim=-1)
        if not bool(self.codebook.initialized):
            self.codebook.initialize(x)
        _, ids, aux = engine.modules["codebook"](x)
        loss, counts = aux["loss"], aux["counts"]
        engine.optimize("codebook", loss)
        if engine.world > 1:
            dist.all_reduce(counts)
        reseeded = self.codebook.reseed(x, counts, self.config.codebook.reseed_steps)
        self.reseeded_total += reseeded
        values: dict[str, Any] = {"loss/codebook": loss.detach(), "ids": ids}
        if engine.is_log_step:
            with torch.no_grad():
                values["cosine"] = (x * F.embedding(ids, self.codebook.codes())).sum(-1).mean()
        values["codebook/reseeded"] = reseeded
        return values

    def finish(self, engine: Engine) -> tuple[ClusterTokenizer, dict[str, Any]]:
        tokenizer = ClusterTokenizer(self.config.model, teacher=self.teacher.cpu())
        tokenizer.quantizer.set_codebook(self.codebook.codes().detach().cpu())
        fields = {
            "method": "online (codebook loss + re-seeding)",
            "codes_reseeded_this_session": self.reseeded_total,
            "teacher": self.config.model.teacher.name,
        }
        return tokenizer, fields

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        return [
            f"tokenizer: {summary['tokenizer']}",
            f"codes re-seeded: {summary['codes_reseeded_this_session']}",
        ]
