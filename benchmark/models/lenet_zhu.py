"""LeNet of Zhu et al., "Deep Leakage from Gradients" (NeurIPS 2019), as used by DLG and iDLG."""

from __future__ import annotations

from torch import Tensor, nn

from benchmark.models import MODELS


@MODELS.register("lenet_zhu")
class LeNetZhu(nn.Module):
    """Conv(C→12,k5,s2,p2) → σ → Conv(12→12,k5,s2,p2) → σ → Conv(12→12,k5,s1,p2) → σ → Linear(12·⌈S/4⌉²→K).

    Sigmoid activations and no pooling, as in the DLG code; 768 features for 32×32 inputs, 588 for
    28×28. Used untrained with every weight and bias drawn U(−0.5, 0.5) (the task's ``init``).
    """

    def __init__(self, channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        side = (image_size + 3) // 4
        self.features = nn.Sequential(
            nn.Conv2d(channels, 12, kernel_size=5, stride=2, padding=2),
            nn.Sigmoid(),
            nn.Conv2d(12, 12, kernel_size=5, stride=2, padding=2),
            nn.Sigmoid(),
            nn.Conv2d(12, 12, kernel_size=5, stride=1, padding=2),
            nn.Sigmoid(),
        )
        self.classifier = nn.Linear(12 * side * side, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, S, S) → logits (N, K)."""
        return self.classifier(self.features(x).flatten(1))
