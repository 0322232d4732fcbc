"""FCN3 of Zhu & Blaschko, "R-GAP: Recursive Gradient Attack on Privacy" (ICLR 2021)."""

from __future__ import annotations

from torch import Tensor, nn

from benchmark.models import MODELS, head_outputs


@MODELS.register("fcn3")
class FCN3(nn.Module):
    """Linear(C·S²→1000) → LeakyReLU(0.2) → Linear(1000→100) → LeakyReLU(0.2) → Linear(100→1).

    No biases; 784-1000-100-1 on MNIST. The head gives the logit of R-GAP's logistic loss directly
    (R-GAP's code also puts a LeakyReLU on the output; a logit head keeps one loss for all binary
    victims). A K-class task gets K logits.
    """

    def __init__(self, channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * image_size * image_size, 1000, bias=False),
            nn.LeakyReLU(0.2),
            nn.Linear(1000, 100, bias=False),
            nn.LeakyReLU(0.2),
            nn.Linear(100, head_outputs(num_classes), bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, S, S) → logits (N, 1) for a binary task, else (N, K)."""
        return self.layers(x)
