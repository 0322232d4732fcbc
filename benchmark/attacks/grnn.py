"""GRNN: Generative Regression Neural Network (Ren, Deng, Xie; ACM TIST 2022)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, replace_all_batch_norm_modules_, vmap

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import OptimizationAttack
from benchmark.attacks.components.distances import squared_distance
from benchmark.attacks.components.priors import squared_total_variation
from benchmark.fl.observation import Observation


def _up_block(inputs: int, outputs: int) -> nn.Sequential:
    """Nearest ×2 → conv3×3 (no bias) to 2·outputs → BatchNorm → GLU: (N, inputs, S, S) → (N, outputs, 2S, 2S)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(inputs, 2 * outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(2 * outputs),
        nn.GLU(dim=1),
    )


class GRNNGenerator(nn.Module):
    """GRNN's two-branch generator of one batch: noise z (B, D) → images (B, C, S, S) in [0, 1] and soft
    labels (B, N).

    Label branch: softmax(Linear(D→N)(z)). Image branch: z as (B, D, 1, 1) → ConvTranspose(D→2·w·2ⁿ, k4)
    → GLU (4×4) → n up-blocks halving the width (w·2ⁿ⁻¹ … w) → an up-block to C channels → sigmoid,
    with n = log₂S − 3 (S = 32: 256 → 128 → 64 → 32 → C). BatchNorm always uses the batch's statistics.
    """

    def __init__(self, noise_dim: int, num_classes: int, channels: int, image_size: int, width: int = 32) -> None:
        super().__init__()
        blocks = int(math.log2(image_size)) - 3
        self.label_branch = nn.Linear(noise_dim, num_classes)
        self.image_branch = nn.Sequential(
            nn.Unflatten(1, (noise_dim, 1, 1)),
            nn.ConvTranspose2d(noise_dim, 2 * width * 2**blocks, 4),
            nn.GLU(dim=1),
            *[_up_block(width * 2 ** (b + 1), width * 2**b) for b in reversed(range(blocks))],
            _up_block(width, channels),
            nn.Sigmoid(),
        )

    def forward(self, noise: Tensor) -> tuple[Tensor, Tensor]:
        return self.image_branch(noise), self.label_branch(noise).softmax(dim=-1)


@dataclass(frozen=True)
class GRNNConfig:
    max_steps: int = 1000  # RMSprop iterations (paper: 1000)
    lr: float = 1e-4
    momentum: float = 0.99
    tv: float = 1e-3  # λ of the TV term (paper: 1e-3 for LeNet, 1e-6 for ResNet-18; tasks set it)
    noise_dim: int = 128
    width: int = 32  # d: channels of the generator's last up-block
    # "pytorch": each layer's own PyTorch default initialisation, which is what the public code ran (its
    # ``weight_init`` loop matches no layer); "normal": conv and linear weights ~ N(0, init_std), biases 0,
    # what that loop was written to do.
    init: Literal["pytorch", "normal"] = "pytorch"
    init_std: float = 0.02  # used by init="normal" only
    patience: int | None = None  # stop a problem whose best loss stalls this many steps (paper: never)
    labels: str = "auto"  # a label rule (leakbench ls label-rules) fixing the labels; auto: the label branch


@ATTACKS.register("grnn")
class GRNN(OptimizationAttack):
    """GRNN (Ren et al., ACM TIST 2022): only a generator's weights φ are optimised; its fixed noise z
    gives the dummy batch (x̂, ŷ) = G_φ(z), and

        min_φ  ‖g(x̂, ŷ) − g‖² + ‖g(x̂, ŷ) − g‖ + λ·TV(x̂),   g(x̂, ŷ) = ∇θ −mean_b Σ_c ŷ_bc log softmax(f(x̂_b))_c

    over all parameter tensors concatenated (the public code calls the second term a Wasserstein
    distance; it is the L2 norm). TV is the squared-difference version. RMSprop (lr 1e-4, momentum
    0.99). The recovered image is x̂ and the label argmax ŷ (the threat model's labels if it gives
    them). Every problem has its own generator, initialised and fed from its own seed; the K
    generators run as one through ``vmap`` over their stacked weights.
    """

    Config = GRNNConfig

    def __init__(
        self, observations: Sequence[Observation], config: GRNNConfig | None = None, seeds: Sequence[int] | None = None
    ) -> None:
        super().__init__(observations, config, seeds)
        first, config = self.observations[0], self.config
        channels, image_size, _ = first.input_shape
        self.register_buffer("noise", self.randn(first.batch_size, config.noise_dim))
        self.generator = GRNNGenerator(config.noise_dim, first.num_classes, channels, image_size, config.width)
        replace_all_batch_norm_modules_(self.generator)  # batch statistics, no running-stat updates under vmap
        self._weight_names = [name for name, _ in self.generator.named_parameters()]
        self.weights = nn.ParameterList(
            [
                nn.Parameter(torch.stack(per_problem))
                for per_problem in zip(*[self._initial_weights(stream) for stream in self.streams])
            ]
        )
        self.generator.requires_grad_(False)
        rule_labels = self.rule_labels()
        self.register_buffer("labels", rule_labels if rule_labels is not None else self.problems.labels)
        self.label_source = (
            f"rule {config.labels}"
            if rule_labels is not None
            else "known"
            if self.labels is not None
            else "label branch"
        )
        self._last: dict[str, Tensor] = {}

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        _, height, width = observation.input_shape
        if height != width or height < 8 or height & (height - 1):
            return f"GRNN's generator makes square images whose side is a power of two ≥ 8, not {height}×{width}"
        return None

    def _initial_weights(self, stream: torch.Generator) -> list[Tensor]:
        """The generator's weights for one problem, drawn from the problem's stream: PyTorch's default
        init of each layer (``init="pytorch"``: Kaiming-uniform weights with a = √5, biases
        U(±1/√fan_in)), or conv, transposed-conv and linear weights from N(0, init_std) with biases 0
        (``"normal"``); BatchNorm at (1, 0) either way."""
        weights = []
        for name, parameter in self.generator.named_parameters():
            module = self.generator.get_submodule(name.rsplit(".", 1)[0])
            value = torch.empty_like(parameter)
            if isinstance(module, nn.BatchNorm2d):
                weights.append(value.fill_(1.0 if name.endswith("weight") else 0.0))
            elif self.config.init == "normal":
                weights.append(
                    nn.init.normal_(value, 0.0, self.config.init_std, generator=stream)
                    if name.endswith("weight")
                    else value.zero_()
                )
            elif name.endswith("weight"):  # as nn.Linear / nn.Conv2d / nn.ConvTranspose2d.reset_parameters
                weights.append(nn.init.kaiming_uniform_(value, a=math.sqrt(5), generator=stream))
            else:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                weights.append(nn.init.uniform_(value, -bound, bound, generator=stream))
        return weights

    def candidates(self) -> list[Tensor]:
        return list(self.weights)

    def generate(self) -> tuple[Tensor, Tensor]:
        """Every problem's dummy batch: images (K, B, C, S, S) in [0, 1], soft labels (K, B, N)."""

        def one(weights: dict[str, Tensor], noise: Tensor) -> tuple[Tensor, Tensor]:
            return functional_call(self.generator, weights, (noise,))

        return vmap(one)(dict(zip(self._weight_names, self.weights)), self.noise)

    def objective(self) -> Tensor:
        images, soft_labels = self.generate()
        first = self.observations[0]
        inputs = images if first.normalization is None else first.normalization.apply(images)
        squared = squared_distance(
            self.problems.flat_updates(inputs, soft_labels if self.labels is None else self.labels),
            self.problems.flat_target,
        )
        labels = soft_labels.argmax(dim=-1) if self.labels is None else self.labels
        self._last = {"images": images.detach(), "labels": labels.detach()}
        return squared + squared.sqrt() + self.config.tv * squared_total_variation(images)

    def current(self) -> dict[str, Tensor]:
        if not self._last:
            with torch.no_grad():
                self.objective()
        return self._last

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(self.candidates(), lr=self.config.lr, momentum=self.config.momentum)
