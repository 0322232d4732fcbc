"""Victim architectures. Each is an ``nn.Module`` built as ``Model(channels, image_size, num_classes)``."""

from __future__ import annotations

import importlib

from torch import nn

from benchmark.registry import Registry


def _discover() -> None:
    importlib.import_module("benchmark.models.lenet_zhu")


MODELS: Registry[type[nn.Module]] = Registry("model", base=nn.Module, discover=_discover)
