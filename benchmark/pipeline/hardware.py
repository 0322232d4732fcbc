"""The hardware a run uses: Lightning's accelerator check, its one label, the launcher."""

from __future__ import annotations

import os
import platform

import pytorch_lightning as pl
import torch
from lightning_fabric import Fabric
from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning_fabric.utilities.exceptions import MisconfigurationException

from benchmark.core.errors import SettingError
from benchmark.core.version import __version__


def check_accelerator(accelerator: str, devices: int = 1, num_nodes: int = 1) -> None:
    """Lightning's own check that ``accelerator`` and ``devices`` exist here, as a one-line error before any work."""
    try:
        Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes)
    except (MisconfigurationException, RuntimeError, ValueError, TypeError, ImportError) as err:
        reason = " ".join(str(err).split())[:200].rstrip(".!")
        raise SettingError(
            f"--accelerator {accelerator} with --devices {devices} cannot run here ({reason}); use "
            f"--accelerator cpu, or gpu (or auto) with at most as many --devices as this machine "
            f"has"
        ) from None
    if num_nodes > 1 and not launched_externally():
        raise SettingError(
            f"--num-nodes {num_nodes} needs a launcher that starts the command on every node "
            f"(torchrun or SLURM's srun, see docs/scaling.md); on one machine leave it at 1"
        )


def hardware(accelerator: str, processes: int = 1) -> str:
    """The one label of the hardware a run used, in results, entries and perf reports: the GPU's name
    and how many a run used (``NVIDIA H200 (1 GPU)``), or the CPU's model and this machine's cores
    (``AMD EPYC (2 cores)``)."""
    if accelerator != "cpu" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} ({processes} GPU{'s' if processes > 1 else ''})"
    try:
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def environment(accelerator: str, processes: int = 1) -> dict[str, str]:
    return {
        "leakbench": __version__,
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "python": platform.python_version(),
        "device": hardware(accelerator, processes),
    } | ({"processes": str(processes)} if processes > 1 else {})


def launched_externally() -> bool:
    """Whether torchrun or SLURM started this process as one of several (Lightning's own detection)."""
    if TorchElasticEnvironment.detect():
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    return SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) > 1
