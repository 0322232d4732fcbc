"""BatchNorm statistics of a batch: computed in a forward pass, or read off the running buffers one
train-mode step leaves (what ``threat.bn_statistics`` grants the server)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from benchmark.core.errors import SpecError

BatchStatistics = tuple[tuple[Tensor, Tensor], ...]  # per BatchNorm layer, in module order: (mean, variance), (C,)


def batch_norm_layers(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """Every BatchNorm layer of ``model`` with its name, in module order (the order of BatchStatistics)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _BatchNorm)]


def batch_statistics(
    model: nn.Module, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor
) -> BatchStatistics:
    """Mean and unbiased variance over (N, H, W) of the input of every BatchNorm layer, in module
    order, in a forward pass of ``inputs``; the victim's statistics and, inside ``vmap``, the
    attacker's of its candidates. ``buffers`` may be updated in place (train mode): pass copies."""
    collected: list[tuple[Tensor, Tensor]] = []

    def record(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        dims = [0, *range(2, args[0].ndim)]
        collected.append((args[0].mean(dims), args[0].var(dims, correction=1)))

    handles = [module.register_forward_pre_hook(record) for _, module in batch_norm_layers(model)]
    try:
        functional_call(model, (params, buffers), (inputs,))
    finally:
        for handle in handles:
            handle.remove()
    return tuple(collected)


def statistics_from_buffers(model: nn.Module, before: dict[str, Tensor], after: dict[str, Tensor]) -> BatchStatistics:
    """The batch mean and unbiased variance of every BatchNorm layer, read off its running buffers
    before and after one train-mode forward pass: r_after = (1 − m)·r_before + m·batch statistic."""
    statistics = []
    for name, module in batch_norm_layers(model):
        m = module.momentum
        if m is None or not module.track_running_stats:
            raise SpecError(
                f"BatchNorm layer '{name}' keeps no exponential running statistics; "
                f"threat.bn_statistics: batch cannot be read off its buffers, use 'known'"
            )
        prefix = f"{name}." if name else ""
        statistics.append(
            tuple((after[prefix + key] - (1 - m) * before[prefix + key]) / m for key in ("running_mean", "running_var"))
        )
    return tuple(statistics)
