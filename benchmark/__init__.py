"""LeakBench: a benchmark of gradient inversion attacks in federated learning.

    >>> import benchmark
    >>> result = benchmark.run(task="cifar10-lenetzhu-b1", attack="idlg", targets=2)
    >>> result.summary["psnr"]
"""

from __future__ import annotations

__version__ = "0.1.0"

from benchmark.runner import run  # noqa: E402

__all__ = ["run", "__version__"]
