"""LeNet-5 with sigmoid activations, the LeNet victim of GRNN (Ren, Deng, Xie; ACM TIST 2022)."""

from __future__ import annotations

from torch import Tensor, nn

from benchmark.models import MODELS


@MODELS.register("lenet5")
class LeNet5(nn.Module):
    """Conv(C→6,k5) → σ → maxpool 2 → Conv(6→16,k5) → σ → maxpool 2 → Linear(16·s²→120) → σ →
    Linear(120→84) → σ → Linear(84→K), with s = ((S − 4)/2 − 4)/2 (400 features for 32×32 inputs).

    Not the LeNet of DLG (:mod:`benchmark.models.lenet_zhu`). GRNN uses it untrained with every weight
    and bias drawn U(−0.5, 0.5) (the task's ``init``).
    """

    def __init__(self, channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"LeNet-5 needs images of at least 12×12 pixels, got {image_size}×{image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5),
            nn.Sigmoid(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.Sigmoid(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * side * side, 120),
            nn.Sigmoid(),
            nn.Linear(120, 84),
            nn.Sigmoid(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, S, S) → logits (N, K)."""
        return self.classifier(self.features(x).flatten(1))
