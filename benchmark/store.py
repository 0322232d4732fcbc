"""The run folder: finished work is durable, a re-run resumes, a changed run is refused.

Layout of a run folder::

    run.json              what defines the run (task, spec hash, attack config, seed, restarts)
    targets.jsonl         one line per finished target, appended and fsynced before the next starts
                          (targets-rankR.jsonl: process R's lines in a multi-process run)
    reconstructions/      target-NNNN.pt: the reconstruction behind each line (written first)
    results.json          the summary and all rows, rewritten atomically at the end of a run
    reconstructions.png   ground truth over reconstructions, each column a matched pair with its
                          recovered label (the .pt files keep the attack's own order)
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchmark.errors import LeakBenchError
from benchmark.result import TargetResult, write_atomic

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
ROWS_FILE = "targets.jsonl"
SHARD_ROWS = "targets-rank*.jsonl"
TENSORS_DIR = "reconstructions"
CHECKPOINTS_DIR = "checkpoints"


class RunStore:
    """A run folder bound to one run definition.

    Args:
        folder: the run folder (created if absent).
        definition: JSON-ready mapping of everything that determines the results.
        fresh: discard what the folder holds instead of resuming it.
        rank: in a multi-process run, this process's rank: it appends to its own rows file.
    """

    def __init__(self, folder: Path, definition: dict[str, Any], *, fresh: bool = False, rank: int | None = None) -> None:
        self.folder = folder
        self.rows_file = folder / (ROWS_FILE if rank is None else f"targets-rank{rank}.jsonl")
        self._check_writable()
        if fresh:
            for name in (RUN_FILE, ROWS_FILE, "results.json", "reconstructions.png"):
                (folder / name).unlink(missing_ok=True)
            for shard in folder.glob(SHARD_ROWS):
                shard.unlink()
            shutil.rmtree(folder / TENSORS_DIR, ignore_errors=True)
            shutil.rmtree(folder / CHECKPOINTS_DIR, ignore_errors=True)
        run_file = folder / RUN_FILE
        if run_file.exists():
            self._check_same_run(run_file, definition)
        else:
            write_atomic(run_file, json.dumps(definition, indent=2, sort_keys=True))
        (folder / TENSORS_DIR).mkdir(exist_ok=True)

    def checkpoint(self, first: int, last: int) -> Path:
        """Where the fit of targets ``first``..``last`` keeps its checkpoint until their rows are stored."""
        return self.folder / CHECKPOINTS_DIR / f"targets-{first:04d}-{last:04d}.ckpt"

    def _check_writable(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.folder):
                pass
        except OSError as err:
            raise LeakBenchError(f"cannot write to the output folder {self.folder}: {err.strerror}; choose another --out") from None

    def _check_same_run(self, run_file: Path, definition: dict[str, Any]) -> None:
        try:
            recorded = json.loads(run_file.read_text())
        except (OSError, ValueError) as err:
            raise LeakBenchError(f"{run_file} is unreadable ({err}); delete the folder or pass --fresh to start over") from None
        definition = json.loads(json.dumps(definition))  # as recorded: tuples become lists
        if recorded != definition:
            keys = sorted(k for k in definition.keys() | recorded.keys() if recorded.get(k) != definition.get(k))
            raise LeakBenchError(
                f"{self.folder} holds a run with a different {', '.join(keys)}; resume it with the same settings, "
                f"use another --out folder, or pass --fresh to discard it"
            )

    def _tensor_path(self, target: int) -> Path:
        return self.folder / TENSORS_DIR / f"target-{target:04d}.pt"

    def finished(self) -> dict[int, tuple[TargetResult, Tensor | None]]:
        """Rows of finished targets with their reconstructions, from every process's file; unreadable
        or torn lines are dropped (and removed from this store's own file, so its appends start on a
        clean line; other processes' files are only read)."""
        rows: dict[int, tuple[TargetResult, Tensor | None]] = {}
        for path in sorted({self.folder / ROWS_FILE, *self.folder.glob(SHARD_ROWS)}):
            if path.exists():
                rows.update((target, row) for target, row in self._read(path).items() if target not in rows)
        return rows

    def _read(self, path: Path) -> dict[int, tuple[TargetResult, Tensor | None]]:
        rows: dict[int, tuple[TargetResult, Tensor | None]] = {}
        lines = path.read_bytes().split(b"\n")
        dropped = 0
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = TargetResult.from_row(json.loads(line))
                images = None if row.failed else torch.load(self._tensor_path(row.target), weights_only=True)
            except (ValueError, TypeError, KeyError, OSError, RuntimeError) as err:
                dropped += 1
                log.warning("%s line %d is incomplete or corrupt (%s); its target will be recomputed", path, number, err)
                continue
            rows.setdefault(row.target, (row, images))
        if path == self.rows_file and (dropped or lines[-1] != b""):
            kept = "".join(json.dumps(row.row()) + "\n" for row, _ in rows.values())
            write_atomic(path, kept)  # rewrite without the dropped lines, so appends start on a clean line
        return rows

    def rewrite(self, rows: list[TargetResult]) -> None:
        """Replace every rows file of the folder by one holding ``rows`` (rescored rows: their tensors
        are unchanged), atomically."""
        write_atomic(self.folder / ROWS_FILE, "".join(json.dumps(row.row(), allow_nan=False) + "\n" for row in rows))
        for shard in self.folder.glob(SHARD_ROWS):
            shard.unlink()

    def append(self, finished: list[tuple[TargetResult, Tensor | None]]) -> None:
        """Make targets durable: their tensor files, then their lines in one fsynced write (so the
        targets solved together in one fit are kept together)."""
        for row, images in finished:
            if images is not None:
                buffer = io.BytesIO()
                torch.save(images.cpu(), buffer)
                write_atomic(self._tensor_path(row.target), buffer.getvalue())
        with open(self.rows_file, "a") as handle:
            handle.write("".join(json.dumps(row.row(), allow_nan=False) + "\n" for row, _ in finished))
            handle.flush()
            os.fsync(handle.fileno())
