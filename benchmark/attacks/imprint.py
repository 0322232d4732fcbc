"""Robbing the Fed's imprint attack (Fowl, Geiping, Czaja, Goldblum, Goldstein; ICLR 2022): a malicious
server prepends an imprint module to the global model, and reads the batch's images off its gradient.

The module (:class:`ImprintBlock`), in front of the task's model on the flattened input x (N = C·H·W
entries of the model input):

    z_i = w·x + β − c_i     (i = 0 … k−1, every row the same measurement direction w)
    a = ReLU(z)             (k bins)
    x' = (1/k)·Σ_i a_i·1    (a linear layer back to the input shape, every column the same)

The measurement h(x) = w·x + β is the image's brightness b (the mean of its [0, 1] pixels over C, H, W;
with a normalised input, w holds std_c / N and β the mean of the channel means). The thresholds
c_0 < c_1 < … < c_{k−1} cut the brightness distribution the threat model grants
(``threat.data_statistics``: a Gaussian or Laplacian with its mean and std) into k bins of equal mass:
c_i is its quantile i/k for i ≥ 1, and c_0 lies below every image's brightness (−1; b is in [0, 1]).

Since every column of the layer back is the same, ∂L/∂a_i = g_n is the same for every row i of one
sample n, so with a_i active for b_n > c_i,

    ∂L/∂W_i = Σ_{n: b_n > c_i} g_n·x_nᵀ,     ∂L/∂b_i = Σ_{n: b_n > c_i} g_n,

and bin i = [c_i, c_{i+1}) (the last bin [c_{k−1}, ∞)) gives, by the difference of two consecutive rows,

    x̂_i = (∂L/∂W_i − ∂L/∂W_{i+1}) / (∂L/∂b_i − ∂L/∂b_{i+1}),

the bias attack's division (:func:`~benchmark.attacks.components.equations.invert_biased_linear` on
one row): exactly x_n for an image alone in its bin, and a weighted mean of the images sharing a bin.

With B images in k bins of equal mass, an image is alone in its bin with probability (1 − 1/k)^(B−1),
the expected share of the batch recovered exactly (the paper's bin analysis; docs/results.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from math import prod
from typing import Any

import torch
from scipy.stats import laplace, norm
from torch import Tensor, nn

from benchmark.attacks import ATTACKS
from benchmark.attacks.base import ClosedFormAttack, Reconstruction
from benchmark.attacks.components.equations import invert_biased_linear
from benchmark.attacks.labels import LABEL_RULES, recover_labels
from benchmark.core.errors import NotApplicableError
from benchmark.fl.observation import ModifiedModel, Observation, ServerKnowledge
from benchmark.protocol.spec import DataStatistics

LOWEST_EDGE = -1.0  # c_0: below the brightness of every image (which lies in [0, 1])
EMPTY = 1e-6  # a bin is empty where its bias-gradient difference is below this share of the largest


@dataclass(frozen=True)
class ImprintConfig:
    max_steps: int = 1  # closed form: one solve
    bins: int = 64  # k: breaching's `malicious-model-rtf` server (model_modification.num_bins)
    labels: str = "auto"  # the threat model's labels where it gives them, else this label rule (auto: llg)


def bin_edges(statistics: DataStatistics, bins: int) -> Tensor:
    """The thresholds c_0 < … < c_{k−1} (k,) float64 on the brightness scale: c_0 below every image,
    c_i the quantile i/k of the granted brightness distribution, so that each bin has mass 1/k."""
    quantiles = [i / bins for i in range(1, bins)]
    if statistics.distribution == "gaussian":
        inner = norm.ppf(quantiles, loc=statistics.mean, scale=statistics.std)
    else:  # a Laplacian of standard deviation std has scale std / √2
        inner = laplace.ppf(quantiles, loc=statistics.mean, scale=statistics.std / math.sqrt(2))
    lowest = min(LOWEST_EDGE, float(inner[0]) - 1.0) if bins > 1 else LOWEST_EDGE
    return torch.tensor([lowest, *inner], dtype=torch.float64)


class ImprintBlock(nn.Module):
    """The imprint module: k ReLU bins of the inputs' brightness, and a layer back to the input shape.

    Args:
        input_shape: (C, H, W) of a model input.
        edges: the thresholds c (k,) on the brightness scale (:func:`bin_edges`).
        normalization: the task's (mean, std) per channel, or None for [0, 1] inputs.
    """

    def __init__(
        self, input_shape: tuple[int, int, int], edges: Tensor, normalization: tuple[Any, Any] | None = None
    ) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        channels, height, width = self.input_shape
        entries, bins = prod(self.input_shape), len(edges)
        mean, std = normalization if normalization is not None else ((0.0,) * channels, (1.0,) * channels)
        self.linear0 = nn.Linear(entries, bins)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(bins, entries)
        with torch.no_grad():
            direction = torch.tensor(std, dtype=torch.float64).repeat_interleave(height * width) / entries
            offset = sum(mean) / channels  # b(x) = w·x + offset on the model input x
            self.linear0.weight.copy_(direction.expand(bins, entries))
            self.linear0.bias.copy_(offset - edges)
            self.linear2.weight.fill_(1.0 / bins)
            self.linear2.bias.zero_()

    def forward(self, inputs: Tensor) -> Tensor:  # (N, C, H, W) → (N, C, H, W)
        return self.linear2(self.relu(self.linear0(inputs.flatten(1)))).view(len(inputs), *self.input_shape)


class Imprinted(nn.Module):
    """The global model a Robbing-the-Fed server sends: ``model`` behind an :class:`ImprintBlock`."""

    def __init__(self, imprint: ImprintBlock, model: nn.Module) -> None:
        super().__init__()
        self.imprint = imprint
        self.model = model

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model(self.imprint(inputs))


def _label_rule(config: ImprintConfig) -> str:
    return "llg" if config.labels == "auto" else config.labels


@ATTACKS.register("imprint")
class ImprintAttack(ClosedFormAttack):
    """Robbing the Fed (malicious server): an imprint module in front of the model; lone images exact.

    Before the round (:meth:`prepare_model`) the server prepends :class:`ImprintBlock` with k bins
    (``bins``) of equal mass under ``threat.data_statistics``. From the update, every non-empty bin
    gives x̂_i = ΔW_i / Δb_i (module docstring), the image itself where it is alone in its bin; the
    batch's B reconstructions are the B non-empty bins with the largest |Δb_i| (bins in brightness
    order; grey images where fewer than B bins are hit). Labels: the threat model's, else the label
    rule ``labels`` (``auto``: LLG, Wainakh et al. 2022). ``details``: ``bins``, ``bins_hit`` (the
    server knows every image is exact when it equals B), ``label_source``; the loss is 1 − hit/B.
    """

    Config = ImprintConfig

    @classmethod
    def prepare_model(cls, model: nn.Module, server: ServerKnowledge, config: ImprintConfig) -> ModifiedModel:
        if server.data_statistics is None:
            raise NotApplicableError(
                "the imprint attack places its bins from the brightness distribution the threat model grants, "
                "and this task grants none; add threat.data_statistics: {mean, std, source}"
            )
        if config.bins < 1:
            raise NotApplicableError(
                f"the imprint module needs at least 1 bin, got bins: {config.bins}; give bins >= 1"
            )
        statistics = server.data_statistics
        normalization = server.normalization
        block = ImprintBlock(
            server.input_shape,
            bin_edges(statistics, config.bins),
            None if normalization is None else (normalization.mean, normalization.std),
        )
        added = sum(p.numel() for p in block.parameters())
        description = {
            "module": "imprint",
            "bins": config.bins,
            "measurement": "brightness: the mean of the [0, 1] pixels",
            "distribution": statistics.distribution,
            "statistics": {"mean": statistics.mean, "std": statistics.std, "source": statistics.source},
            "parameters_added": added,
        }
        return ModifiedModel(Imprinted(block, model), description)

    @classmethod
    def unsupported(cls, observation: Observation) -> str | None:
        if not isinstance(observation.model, Imprinted):
            return (
                "the global model holds no imprint module: the imprint attack needs a malicious server "
                "(threat.server: malicious) that sends its model"
            )
        if observation.fl.protocol != "fedsgd":
            return f"the imprint attack reads a FedSGD gradient (this task uses {observation.fl.protocol})"
        if observation.model.imprint.input_shape != tuple(observation.input_shape):
            return "the imprint module was built for another input shape than the task's"
        return None

    def solve(self, observation: Observation) -> Reconstruction:
        block: ImprintBlock = observation.model.imprint  # type: ignore[assignment]
        index = {id(p): i for i, p in enumerate(observation.model.parameters())}
        grad_weight = observation.update[index[id(block.linear0.weight)]].to(torch.float64)
        grad_bias = observation.update[index[id(block.linear0.bias)]].to(torch.float64)
        # bin i's rows: row i minus row i + 1 (the last bin's row alone)
        delta_weight = grad_weight - torch.cat([grad_weight[1:], torch.zeros_like(grad_weight[:1])])
        delta_bias = grad_bias - torch.cat([grad_bias[1:], torch.zeros_like(grad_bias[:1])])
        scale = float(grad_bias.abs().max())
        hit = (delta_bias.abs() > EMPTY * scale).nonzero().flatten() if scale > 0 else torch.zeros(0, dtype=torch.long)
        batch = observation.batch_size
        kept = hit[delta_bias[hit].abs().argsort(descending=True)[:batch]].sort().values
        images = torch.full((batch, *observation.input_shape), 0.5)
        for position, i in enumerate(kept.tolist()):
            inputs, _ = invert_biased_linear(delta_weight[i : i + 1], delta_bias[i : i + 1])
            images[position] = observation.to_images(inputs.reshape(1, *observation.input_shape).float())[0]
        labels, source = self._labels(observation)
        details = {"bins": len(grad_bias), "bins_hit": len(hit), "label_source": source}
        return Reconstruction(images=images, labels=labels, loss=1.0 - min(len(hit), batch) / batch, details=details)

    def _labels(self, observation: Observation) -> tuple[Tensor, str]:
        if observation.labels is not None and self.config.labels == "auto":
            return observation.labels.clone().long(), "known"
        if observation.labels is not None:
            raise NotApplicableError(
                f"labels: {self.config.labels} would replace the labels the threat model gives (threat.labels: known); "
                "leave labels: auto"
            )
        rule = _label_rule(self.config)
        return recover_labels(rule, observation).labels.long(), f"rule {LABEL_RULES.canonical(rule)}"
