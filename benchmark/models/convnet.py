"""The ConvNet of Inverting Gradients (Geiping et al., NeurIPS 2020)."""

from __future__ import annotations

from torch import Tensor, nn

from benchmark.models import MODELS


def _block(inputs: int, outputs: int) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, kernel_size=3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU()]


@MODELS.register("convnet")
class ConvNet(nn.Module):
    """Eight conv-BN-ReLU blocks of widths w, 2w, 2w, 4w, 4w, 4w | pool3 | 4w, 4w | pool3, then a
    linear layer; w = 64. The public code lists a ninth block under a duplicated name, which its
    OrderedDict silently drops: the network its results come from is this one, built without
    the duplicate.
    """

    def __init__(self, channels: int, image_size: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        widths = [channels, width, 2 * width, 2 * width, 4 * width, 4 * width, 4 * width]
        layers = [module for i in range(6) for module in _block(widths[i], widths[i + 1])]
        layers += [nn.MaxPool2d(3), *_block(4 * width, 4 * width), *_block(4 * width, 4 * width), nn.MaxPool2d(3)]
        self.features = nn.Sequential(*layers)
        side = image_size // 3 // 3
        self.classifier = nn.Linear(4 * width * side * side, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, S, S) → logits (N, K)."""
        return self.classifier(self.features(x).flatten(1))


@MODELS.register("convnet16")
class ConvNet16(ConvNet):
    """The same ConvNet at width w = 16 (the public code's ``ConvNet16``): a BatchNorm network a CPU attacks in minutes."""

    def __init__(self, channels: int, image_size: int, num_classes: int) -> None:
        super().__init__(channels, image_size, num_classes, width=16)
