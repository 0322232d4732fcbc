"""A two-layer perceptron whose first layer is fully connected with a bias: the victim of the
analytic bias attack (Phong et al. 2017; Geiping et al., NeurIPS 2020)."""

from __future__ import annotations

from torch import Tensor, nn

from benchmark.models import MODELS, head_outputs


@MODELS.register("mlp")
class MLP(nn.Module):
    """Linear(C·S²→256) → ReLU → Linear(256→K), with biases, on the flattened image."""

    def __init__(self, channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * image_size * image_size, 256),
            nn.ReLU(),
            nn.Linear(256, head_outputs(num_classes)),
        )

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, S, S) → logits (N, K) (N, 1 for a binary task)."""
        return self.layers(x)
