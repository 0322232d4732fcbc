"""Task specs: frozen, versioned protocol descriptions loaded from YAML (``tasks/*.yaml``).

A spec may ``include:`` another (a task name or a path relative to the including file) and
override a few keys; mappings merge recursively, everything else is replaced. Changing what a spec
measures bumps its ``version``; :func:`spec_hash` fingerprints the resolved content.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # a spec is read without importing torch (``leakbench ls tasks``)
    from torch import Tensor


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Normalization(_Strict):
    """Per-channel preprocessing of model inputs: x_model = (x - mean) / std, x in [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        return tuple(like.new_tensor(v)[:, None, None] for v in (self.mean, self.std))

    def apply(self, images: Tensor) -> Tensor:
        """[0, 1] images (N, C, H, W) → model inputs."""
        mean, std = self._stats(images)
        return (images - mean) / std

    def invert(self, inputs: Tensor) -> Tensor:
        """Model inputs (N, C, H, W) → image scale (not clamped)."""
        mean, std = self._stats(inputs)
        return inputs * std + mean


class BinaryLabels(_Strict):
    """A binary task on a multi-class dataset: the classes in ``positive`` are label 1, all others 0.

    A binary task has K = 2; models give it a one-logit head (the binary logistic loss of
    :func:`benchmark.fl.updates.task_loss`), as R-GAP's victims do.
    """

    name: str = Field(description="what label 1 means, e.g. 'animal'")
    positive: tuple[int, ...] = Field(min_length=1, description="dataset classes mapped to label 1")

    def apply(self, labels: Tensor) -> Tensor:
        """Dataset class indices (N,) → binary labels (N,) int64."""
        return labels.unsqueeze(-1).eq(labels.new_tensor(self.positive)).any(-1).long()


class DataSpec(_Strict):
    dataset: str = Field(description="a registered dataset: mnist, cifar10, cifar100, folder")
    split: Literal["train", "test"] = "test"
    path: str | None = Field(None, description="image folder (torchvision ImageFolder layout) for dataset 'folder'")
    image_size: int | None = Field(None, gt=0, description="resize to this square size; default: native")
    channels: Literal[1, 3] | None = Field(None, description="convert to this many channels; default: native")
    normalize: Normalization | None = None
    binary: BinaryLabels | None = Field(None, description="make the task binary: these classes → 1, the rest → 0")


class TargetsSpec(_Strict):
    """Target t is the batch of positions start + t*B ... start + (t+1)*B - 1 (B = fl.batch_size).

    A position is a dataset index, or with ``select: per_identity`` a person: position p is the first
    image of the p-th person (by label) with at least two images, the rest of whose images form the
    face re-identification gallery.
    """

    start: int = Field(0, ge=0)
    count: int = Field(20, ge=1)
    select: Literal["consecutive", "per_identity"] = Field(
        "consecutive", description="consecutive dataset indices, or one image per person with >= 2 images"
    )


class VictimSpec(_Strict):
    model: str
    init: Literal["uniform", "default"] = Field("default", description="uniform: every parameter U(-s, s)")
    init_scale: float = Field(0.5, gt=0)
    seed: int = Field(0, description="victim init seed")
    reinit: Literal["per_target", "once"] = Field(
        "per_target", description="per_target: a fresh model for target t from seed + t; once: one model for all"
    )
    mode: Literal["train", "eval"] = "train"
    state: str = Field(
        "untrained",
        pattern=r"^(untrained|trained@[1-9][0-9]*)$",
        description="untrained, or trained@E: the weights `leakbench victim train --epochs E` stores",
    )

    @property
    def trained_epochs(self) -> int | None:
        """E of ``state: trained@E``; None for an untrained victim."""
        return int(self.state.split("@")[1]) if self.state != "untrained" else None


class FLSpec(_Strict):
    """The client's round: FedSGD shares ∇θ L on its batch; FedAvg takes ``local_epochs`` passes of
    SGD (``local_lr``) over the batch in mini-batches of ``local_batch_size`` and shares θ_before − θ_after."""

    protocol: Literal["fedsgd", "fedavg"] = "fedsgd"
    batch_size: int = Field(1, ge=1)
    local_epochs: int = Field(1, ge=1, description="FedAvg: passes over the batch")
    local_batch_size: int | None = Field(None, ge=1, description="FedAvg: mini-batch size; default: the batch")
    local_lr: float = Field(1e-4, gt=0, description="FedAvg: the client's SGD learning rate")


class DataStatistics(_Strict):
    """What a malicious server is granted of the data distribution (``threat.data_statistics``): the
    mean and standard deviation of one image's brightness b(x) (the average of its [0, 1] pixel values
    over C, H, W) over the dataset's images, the shape of the distribution it assumes for b, and where
    the two numbers come from. Robbing the Fed (Fowl et al., ICLR 2022) places its imprint bins at
    quantiles of this distribution; the paper's server estimates it from public data."""

    mean: float = Field(description="mean brightness of an image, on [0, 1]")
    std: float = Field(gt=0, description="standard deviation of the brightness of an image")
    distribution: Literal["gaussian", "laplacian"] = Field(
        "gaussian", description="the distribution assumed for the brightness, with that mean and std"
    )
    source: str = Field(
        min_length=1, description="where the numbers come from (which images, disjoint from the targets)"
    )


class ThreatSpec(_Strict):
    """What the server learns besides the update, and what it may do. ``bn_statistics``: what it learns
    of the private batch's BatchNorm statistics: ``none``; ``batch``, the client's BatchNorm buffers
    after its round (uploaded with the weights, as FedAvg implementations that average buffers do),
    from which each layer's batch mean and variance follow (FedSGD, train mode); or ``known``, each
    layer's batch mean and variance themselves (the assumption of Yin et al.'s BN prior, CVPR 2021).
    ``server``: ``honest`` (honest but curious: it sends the task's global model as it is) or
    ``malicious`` (it may send the client a model it modified before the round, e.g. Robbing the
    Fed's imprint module, Fowl et al., ICLR 2022); ``data_statistics``: what a malicious server knows
    of the data distribution (:class:`DataStatistics`)."""

    labels: Literal["known", "unknown"] = Field("unknown", description="whether the server sees the labels")
    bn_statistics: Literal["none", "batch", "known"] = Field(
        "none", description="what the server learns of the private batch's BatchNorm statistics"
    )
    server: Literal["honest", "malicious"] = Field(
        "honest", description="honest: it sends the task's global model; malicious: it may modify it before the round"
    )
    data_statistics: DataStatistics | None = Field(
        None, description="a malicious server's knowledge of the data distribution (the brightness of an image)"
    )


class DefenseSpec(_Strict):
    """A defence the client applies to its update (:mod:`benchmark.defenses`), by registered name."""

    name: str = Field(description="a registered defence: gaussian, laplacian, clipping, dpsgd, pruning, ...")
    params: dict[str, float | int | str] = Field(default_factory=dict, description="the defence's parameters")
    seed: int = Field(0, description="seed of the defence's randomness (target t: from (seed, t))")


class BudgetSpec(_Strict):
    max_steps: int | None = Field(None, ge=1, description="optimisation steps; default: the attack's own")
    restarts: int = Field(1, ge=1, description="tries per target; the lowest final loss wins")
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per attack, config values the protocol fixes (e.g. IG's tv weight)"
    )


class TaskSpec(_Strict):
    name: str
    version: int = Field(ge=1)
    description: str = ""
    data: DataSpec
    targets: TargetsSpec = TargetsSpec()
    victim: VictimSpec
    fl: FLSpec = FLSpec()
    threat: ThreatSpec = ThreatSpec()
    defense: DefenseSpec | None = None
    budget: BudgetSpec = BudgetSpec()
    metrics: tuple[str, ...] = ("mse", "psnr", "ssim", "label_accuracy")

    def target_indices(self, target: int) -> list[int]:
        """Positions (see :class:`TargetsSpec`) of target ``target`` (0-based)."""
        first = self.targets.start + target * self.fl.batch_size
        return list(range(first, first + self.fl.batch_size))


def threat_model(spec: TaskSpec) -> str:
    """The server's knowledge and the victim's setting in a few words, e.g. ``labels unknown, train, fedsgd``."""
    fl = spec.fl
    protocol = fl.protocol if fl.protocol == "fedsgd" else f"fedavg {fl.local_epochs} epoch(s) lr {fl.local_lr:g}"
    server = ", malicious server" if spec.threat.server == "malicious" else ""
    return f"labels {spec.threat.labels}, {spec.victim.mode}, {protocol}{server}"


class SuiteSpec(_Strict):
    description: str = Field("", description="shown on the suite's boards")
    attacks: tuple[str, ...] | None = Field(None, description="attacks the suite runs; default: every registered one")
    task_attacks: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="per task, the attacks run on it instead of `attacks`"
    )
    targets: int | None = Field(None, ge=1, description="targets per task; default: each spec's count")
    max_steps: int | None = Field(None, ge=1, description="a cap on every attack's steps; default: none")
    tasks: tuple[str, ...]

    @model_validator(mode="after")
    def _known_tasks(self) -> SuiteSpec:
        if extra := [task for task in self.task_attacks if task not in self.tasks]:
            raise ValueError(
                f"task_attacks names {', '.join(extra)}, not among its tasks; add it to tasks or remove it"
            )
        return self

    def attacks_of(self, task: str) -> tuple[str, ...] | None:
        """The attacks the suite runs on ``task``; None: every registered one."""
        return self.task_attacks.get(task, self.attacks)
