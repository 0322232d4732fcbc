"""The run folder: finished work is durable, a re-run resumes, a changed run is refused.

Layout of a run folder::

    run.json              what defines the run (task, spec hash, attack config and code, seed, restarts,
                          targets per fit)
    targets.jsonl         one line per finished target, appended and fsynced before the next starts
                          (targets-rankR.jsonl: process R's lines in a multi-process run)
    reconstructions/      target-NNNN.pt: the reconstruction behind each line (written first)
    checkpoints/          targets-FFFF-LLLL/: what the fit of targets FFFF..LLLL writes while it runs
                          (fit.ckpt every 500 steps with its fit.ckpt.sha256), removed once their lines are in
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

from benchmark.core.errors import LeakBenchError
from benchmark.core.files import read_json, write_atomic
from benchmark.pipeline.result import TargetResult

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
        retry_failed: drop the rows of failed targets (the others stay byte for byte), so that they
            are recomputed.
        rank: in a multi-process run, this process's rank: it appends to its own rows file.
    """

    def __init__(
        self,
        folder: Path,
        definition: dict[str, Any],
        *,
        fresh: bool = False,
        retry_failed: bool = False,
        rank: int | None = None,
    ) -> None:
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
        if retry_failed:
            self._drop_failed()

    def checkpoint(self, first: int, last: int) -> Path:
        """Where the fit of targets ``first``..``last`` keeps its checkpoint until their rows are stored: in
        a folder of its own, all that the fit writes (an isolated one, all that it can write)."""
        return self.folder / CHECKPOINTS_DIR / f"targets-{first:04d}-{last:04d}" / "fit.ckpt"

    def _check_writable(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.folder):
                pass
        except OSError as err:
            raise LeakBenchError(
                f"cannot write to the output folder {self.folder}: {err.strerror}; choose another --out"
            ) from None

    def _check_same_run(self, run_file: Path, definition: dict[str, Any]) -> None:
        recorded = read_json(run_file, "run record", "delete the folder or pass --fresh to start over")
        definition = json.loads(json.dumps(definition))  # as recorded: tuples become lists
        if recorded != definition:
            keys = sorted(k for k in definition.keys() | recorded.keys() if recorded.get(k) != definition.get(k))
            raise LeakBenchError(
                f"{self.folder} holds a run with a different {', '.join(_what_differs(k, recorded.get(k), definition.get(k)) for k in keys)}; "
                f"resume it with the same settings and code, use another --out folder, or pass --fresh to discard it"
            )

    def _tensor_path(self, target: int) -> Path:
        return self.folder / TENSORS_DIR / f"target-{target:04d}.pt"

    def _rows_files(self) -> list[Path]:
        return sorted(path for path in {self.folder / ROWS_FILE, *self.folder.glob(SHARD_ROWS)} if path.exists())

    def _drop_failed(self) -> None:
        for path in self._rows_files():
            lines = path.read_bytes().splitlines(keepends=True)
            kept = [line for line in lines if not _is_failed(line)]
            if len(kept) < len(lines):
                log.info("%s: %d failed target(s) will be recomputed (--retry-failed)", path, len(lines) - len(kept))
                write_atomic(path, b"".join(kept))

    def finished(self, shape: tuple[int, ...] | None = None) -> dict[int, tuple[TargetResult, Tensor | None]]:
        """Rows of finished targets with their reconstructions (float tensors of ``shape``, if given),
        from every process's file. Unreadable or torn lines, and lines whose reconstruction is missing
        or damaged, are dropped: removed from this store's own file (the other lines stay byte for
        byte, and appends start on a clean line), so their targets are recomputed; other processes'
        files are only read."""
        rows: dict[int, tuple[TargetResult, Tensor | None]] = {}
        for path in self._rows_files():
            rows.update((target, row) for target, row in self._read(path, shape).items() if target not in rows)
        return rows

    def _read(self, path: Path, shape: tuple[int, ...] | None) -> dict[int, tuple[TargetResult, Tensor | None]]:
        rows: dict[int, tuple[TargetResult, Tensor | None]] = {}
        lines = path.read_bytes().split(b"\n")
        kept = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = TargetResult.from_row(json.loads(line))
                images = None if row.failed is not None else self._images(row.target, shape)
            except (ValueError, TypeError, KeyError, RecursionError) as err:
                log.warning(
                    "%s line %d is incomplete or corrupt (%s); its target will be recomputed", path, number, err
                )
                continue
            rows.setdefault(row.target, (row, images))
            kept.append(line)
        if path == self.rows_file and (len(kept) < sum(bool(line.strip()) for line in lines) or lines[-1] != b""):
            write_atomic(path, b"".join(line + b"\n" for line in kept))  # appends start on a clean line
        return rows

    def rewrite(self, rows: list[TargetResult]) -> None:
        """Replace every rows file of the folder by one holding ``rows`` (rescored rows: their tensors
        are unchanged), atomically."""
        write_atomic(self.folder / ROWS_FILE, "".join(json.dumps(row.row(), allow_nan=False) + "\n" for row in rows))
        for shard in self.folder.glob(SHARD_ROWS):
            shard.unlink()

    def _images(self, target: int, shape: tuple[int, ...] | None) -> Tensor:
        """The reconstruction of a finished target; ValueError where it is missing, unreadable or not of ``shape``."""
        path = self._tensor_path(target)
        try:
            images = torch.load(path, weights_only=True)
        except Exception as err:  # a missing, torn or damaged file, whatever torch makes of it: recomputed
            raise ValueError(f"its reconstruction {path.name} is unreadable: {type(err).__name__}") from None
        if (
            not isinstance(images, Tensor)
            or not images.is_floating_point()
            or shape is not None
            and tuple(images.shape) != tuple(shape)
        ):
            raise ValueError(f"its reconstruction {path.name} is not a float tensor of shape {shape}")
        return images

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


def _what_differs(key: str, recorded: Any, now: Any) -> str:
    """``key``, with the entries that differ where both values are mappings (``attack_code (benchmark.attacks.dlg)``)."""
    if not (isinstance(recorded, dict) and isinstance(now, dict)):
        return key
    inner = sorted(k for k in recorded.keys() | now.keys() if recorded.get(k) != now.get(k))
    return f"{key} ({', '.join(inner)})"


def _is_failed(line: bytes) -> bool:
    """Whether a rows-file line is a failed target's row (a corrupt line is not: reading drops it)."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(row, dict) and row.get("failed") is not None
