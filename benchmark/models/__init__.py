"""Victim architectures. Each is an ``nn.Module`` built as ``Model(channels, image_size, num_classes)``."""

from __future__ import annotations

import importlib

from torch import nn

from benchmark.core.registry import Registry

_BUILTIN = ("lenet_zhu", "lenet5", "cnn6", "fcn3", "mlp", "convnet", "resnet")


def _discover() -> None:
    for module in _BUILTIN:
        importlib.import_module(f"benchmark.models.{module}")


def head_outputs(num_classes: int) -> int:
    """Logits of a classifier head: one for a binary task (K = 2: a logistic head, see
    :func:`benchmark.fl.updates.task_loss`), else K."""
    return 1 if num_classes == 2 else num_classes


MODELS: Registry[type[nn.Module]] = Registry("model", base=nn.Module, discover=_discover)
