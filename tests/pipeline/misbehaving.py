"""An attack that misbehaves on purpose, for the isolation tests: a module of its own, which an isolated
fit imports in its sandbox (so it imports nothing of the tests but leakbench)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from benchmark.attacks.base import ClosedFormAttack, Reconstruction
from benchmark.fl.observation import Observation


@dataclass(frozen=True)
class MisbehavingConfig:
    max_steps: int = 1
    action: str = "none"  # connect, write, read, or none
    target: str = ""  # connect: HOST:PORT; write: a file to write; read: an image file to return as the reconstruction


class Misbehaving(ClosedFormAttack):
    """Does what its config says instead of attacking: connects to an address, writes a file, or reads
    an image (the private one, if it can) and returns it as its reconstruction."""

    Config = MisbehavingConfig

    def solve(self, observation: Observation) -> Reconstruction:
        channels, size, _ = observation.input_shape
        images = torch.zeros(observation.batch_size, channels, size, size)
        if self.config.action == "connect":
            host, port = self.config.target.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=5).close()
        elif self.config.action == "write":
            Path(self.config.target).write_text("written by an attack")
        elif self.config.action == "read":
            pixels = torch.from_numpy(np.array(Image.open(self.config.target).convert("RGB"))).permute(2, 0, 1)
            images[:] = TF.resize(pixels.float() / 255, [size, size], antialias=True).clamp(0, 1)
        return Reconstruction(images=images, labels=torch.zeros(observation.batch_size, dtype=torch.int64), loss=0.0)
