"""LeakBench: a benchmark of gradient inversion attacks in federated learning.

>>> import benchmark
>>> result = benchmark.run(task="cifar10-lenetzhu-b1", attack="idlg", targets=2)
>>> result.summary["psnr"]
"""

from __future__ import annotations

from typing import Any

from benchmark.core.version import __version__

__all__ = ["run", "__version__"]


def __getattr__(name: str) -> Any:
    """``benchmark.run``, imported on first use (PEP 562): importing the package imports no torch."""
    if name == "run":
        from benchmark.pipeline.run import run

        return run
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
