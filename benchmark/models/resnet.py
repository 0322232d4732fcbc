"""CIFAR-style ResNets (He et al., 2016): a 3×3 stem without pooling, stages of basic blocks."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from benchmark.models import MODELS


class BasicBlock(nn.Module):
    """conv3×3-BN-act-conv3×3-BN plus a (projected) shortcut, then act."""

    def __init__(self, inputs: int, outputs: int, stride: int, activation: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            activation(),
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and inputs == outputs
            else nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False), nn.BatchNorm2d(outputs))
        )
        self.act = activation()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv3×3 → stages (the first at stride 1, the others halving the size) → global average
    pool → linear. ``blocks[i]`` basic blocks of width ``widths[i]`` in stage i; ``activation``
    builds every non-linearity (ReLU by default)."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        blocks: tuple[int, ...],
        widths: tuple[int, ...],
        activation: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            activation(),
        ]
        inputs = widths[0]
        for stage, (count, width) in enumerate(zip(blocks, widths)):
            for index in range(count):
                layers.append(BasicBlock(inputs, width, 2 if stage > 0 and index == 0 else 1, activation))
                inputs = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(inputs, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) → logits (N, K)."""
        return self.classifier(self.features(x))


@MODELS.register("resnet18")
class ResNet18(CifarResNet):
    """ResNet-18 for 32×32 inputs: stages of 2, 2, 2, 2 blocks, widths 64, 128, 256, 512."""

    def __init__(self, channels: int, image_size: int, num_classes: int) -> None:
        super().__init__(channels, num_classes, blocks=(2, 2, 2, 2), widths=(64, 128, 256, 512))


@MODELS.register("resnet18_sigmoid")
class ResNet18Sigmoid(CifarResNet):
    """ResNet-18 with every ReLU made a sigmoid: the ResNet victim of GRNN (Ren et al., ACM TIST 2022),
    used untrained with BatchNorm in train mode."""

    def __init__(self, channels: int, image_size: int, num_classes: int) -> None:
        super().__init__(channels, num_classes, blocks=(2, 2, 2, 2), widths=(64, 128, 256, 512), activation=nn.Sigmoid)


@MODELS.register("resnet20_4")
class ResNet20x4(CifarResNet):
    """ResNet-20 (3 stages of 3 blocks) at width ×4: 64, 128, 256 channels, as in Inverting Gradients."""

    def __init__(self, channels: int, image_size: int, num_classes: int) -> None:
        super().__init__(channels, num_classes, blocks=(3, 3, 3), widths=(64, 128, 256))
