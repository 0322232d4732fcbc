"""Figures papers report, shown beside the measured ones; keyed by (attack, task).

Only figures the papers state for the same victim and dataset go here. They come from a paper's own
trials (random images, often many more than a protocol's targets), so they are context, not a
target to match. Label accuracy is stored as a fraction, as the benchmark measures it.
"""

from __future__ import annotations

from benchmark.apps.leaderboard.schema import PaperFigure

_IDLG = "Zhao, Mopuri, Bilen: iDLG: Improved Deep Leakage from Gradients (2020)"
_IDLG_URL = "https://arxiv.org/abs/2001.02610"


def _label_accuracy(percent: float, attack: str, dataset: str) -> list[PaperFigure]:
    return [
        PaperFigure(
            metric="label_accuracy",
            value=percent / 100,
            paper=_IDLG,
            url=_IDLG_URL,
            reported=f"{attack} label accuracy {percent} % on {dataset}, LeNet-Zhu, 1000 random trials",
        )
    ]


PAPER_FIGURES: dict[tuple[str, str], list[PaperFigure]] = {
    ("dlg", "mnist-lenetzhu-b1"): _label_accuracy(89.9, "DLG", "MNIST"),
    ("dlg", "cifar100-lenetzhu-b1"): _label_accuracy(83.3, "DLG", "CIFAR-100"),
    ("idlg", "mnist-lenetzhu-b1"): _label_accuracy(100.0, "iDLG", "MNIST"),
    ("idlg", "cifar100-lenetzhu-b1"): _label_accuracy(100.0, "iDLG", "CIFAR-100"),
}


def paper_figures(attack: str, task: str) -> list[PaperFigure]:
    return PAPER_FIGURES.get((attack, task), [])
