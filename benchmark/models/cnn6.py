"""CNN6 and CNN6-d of Zhu & Blaschko, "R-GAP: Recursive Gradient Attack on Privacy" (ICLR 2021)."""

from __future__ import annotations

from torch import Tensor, nn

from benchmark.models import MODELS, head_outputs


def _side(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@MODELS.register("cnn6")
class CNN6(nn.Module):
    """Conv(C→12,k4,s2,p2) → Conv(12→w,k3,s2,p1) → Conv(w→36,k3,s1,p1) → Conv(36→36,k3,s1,p1) →
    Conv(36→64,k3,s2,p1) → Conv(64→128,k3,s1,p1) → Linear(128·s²→1), w = 36.

    No biases, LeakyReLU(0.2) after every convolution; a binary task gets R-GAP's one-logit
    logistic head (3200 features for 32×32 inputs). Layers are created in R-GAP's order, so the
    same seed gives R-GAP's weights under PyTorch's default init.
    """

    conv2_channels = 36

    def __init__(self, channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        widths = (channels, 12, self.conv2_channels, 36, 36, 64, 128)
        shapes = ((4, 2, 2), (3, 2, 1), (3, 1, 1), (3, 1, 1), (3, 2, 1), (3, 1, 1))  # (kernel, stride, padding)
        layers: list[nn.Module] = []
        side = image_size
        for c_in, c_out, (kernel, stride, padding) in zip(widths, widths[1:], shapes):
            layers += [nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), nn.LeakyReLU(0.2)]
            side = _side(side, kernel, stride, padding)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(128 * side * side, head_outputs(num_classes), bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, S, S) → logits (N, 1) for a binary task, else (N, K)."""
        return self.classifier(self.features(x).flatten(1))


@MODELS.register("cnn6d")
class CNN6d(CNN6):
    """CNN6-d: CNN6 with its second convolution narrowed to 20 channels, which leaves that layer's
    R-GAP system rank-deficient (R-GAP's example of a network its rank analysis predicts to be safer)."""

    conv2_channels = 20
