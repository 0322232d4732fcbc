"""The sandbox an isolated fit runs in (``--isolated``; what it withholds: ``docs/trust.md``).

Standard library only: :mod:`benchmark.pipeline.isolation` runs this file as a script (``python -I``, before
anything of leakbench or torch is imported) as the first process of new mount, network, PID and IPC
namespaces that util-linux ``unshare`` makes (with a user namespace too where it is not root). It

1. builds a new root on a tmpfs holding, read-only, only the paths the config names (the Python
   installation, leakbench, the attack's package); the paths to hide (the datasets' files) covered by
   empty ones; the fit's folder, the one writable path; in ``/dev`` only null, zero, full, random and
   urandom; in ``/proc`` the new PID namespace's own processes;
2. pivots into it and detaches the old root, so nothing else of the machine's files is reachable;
3. sets the resource limits (memory, CPU time, file size, no core dumps);
4. drops its privileges: as root, to user ``nobody`` without capabilities; otherwise into a nested
   user namespace, where the kernel locks every mount (no unmounting a cover, no remounting
   read-write); either way with ``no_new_privs``;
5. imports :func:`benchmark.pipeline.isolated.serve` and runs the fit (or, for a probe, stops there).

A step that fails writes one line (``setup-error.txt`` in the fit folder) and exits with
:data:`SETUP_FAILED`.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import resource
import sys
from pathlib import Path

TIME_LIMIT = 86_400  # the default limits of an isolated fit: seconds of wall-clock time,
MEMORY_LIMIT = 16.0  # and GiB of memory
SETUP_FAILED = 3
SETUP_ERROR = "setup-error.txt"
DEVICES = ("null", "zero", "full", "random", "urandom")

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
_KEPT_OPTIONS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": 1024,
    "nodiratime": 2048,
    "relatime": 1 << 21,
    "strictatime": 1 << 24,
}  # a bind's flags a user namespace must keep
CLONE_NEWNS, CLONE_NEWUSER = 0x20000, 0x10000000
PR_SET_NO_NEW_PRIVS, MNT_DETACH = 38, 2
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}  # syscall numbers

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def _mount(source: str | None, target: str, kind: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda text: None if text is None else os.fsencode(text)  # noqa: E731
    _check(
        _libc.mount(encode(source), encode(target), encode(kind), ctypes.c_ulong(flags), encode(data)),
        f"mounting {source or kind or target} on {target}",
    )


def _mounts_under(target: str) -> list[tuple[str, int]]:
    """The mount points at or under ``target`` with the flags each must keep, from /proc/self/mountinfo."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        point = re.sub(r"\\([0-7]{3})", lambda code: chr(int(code[1], 8)), fields[4])  # \040 is a space
        if point == target or point.startswith(target.rstrip("/") + "/"):
            flags = sum(flag for option, flag in _KEPT_OPTIONS.items() if option in fields[5].split(","))
            found.append((point, flags))
    return found


def _make_point(root: str, path: str, directory: bool) -> str:
    target = root + path
    if directory:
        os.makedirs(target, exist_ok=True)
    elif not os.path.lexists(target):  # a file to cover already exists (read-only)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Path(target).touch()
    return target


def _bind(root: str, path: str, *, source: str | None = None, writable: bool = False) -> None:
    """``source`` (default ``path``), with the mounts under it, at ``path`` in the new root; read-only
    unless ``writable``. A symbolic link is copied as a link."""
    source = source or path
    if source == path and os.path.islink(path):
        os.makedirs(os.path.dirname(root + path), exist_ok=True)
        os.symlink(os.readlink(path), root + path)
        return
    target = _make_point(root, path, os.path.isdir(source))
    _mount(source, target, None, MS_BIND | MS_REC)
    if not writable:
        for point, flags in _mounts_under(target):
            _mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)


def _hide(root: str, path: str) -> None:
    """Cover ``path`` in the new root with an empty folder (or, for a file, /dev/null), read-only."""
    if os.path.isdir(path):
        _mount("tmpfs", root + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0555")
    else:
        _bind(root, path, source="/dev/null")


def _pivot(root: str) -> None:
    """Make ``root`` the root of this mount namespace and detach the old one."""
    number = _PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(0, f"pivot_root: no syscall number known for {platform.machine()}")
    os.chdir(root)
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detaching the old root")
    os.chdir("/")


def _limit(limits: dict[str, int]) -> None:
    for name, value in (
        ("RLIMIT_DATA", limits["memory"]),
        ("RLIMIT_FSIZE", limits["file_size"]),
        ("RLIMIT_CORE", 0),
        ("RLIMIT_CPU", limits["cpu"]),
    ):
        resource.setrlimit(getattr(resource, name), (value, value + 5 if name == "RLIMIT_CPU" else value))


def _drop(user: int | None) -> None:
    """To ``user`` without capabilities (from root), or (in a user namespace) into a nested one that locks the mounts."""
    if user is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (4096, 4096))  # counts this user's processes machine-wide
        os.setgroups([])
        os.setresgid(user, user, user)
        os.setresuid(user, user, user)
    else:
        uid, gid = os.getuid(), os.getgid()
        _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "entering a nested user namespace")
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "setting no_new_privs")


def enter(config: dict) -> None:
    """Build the sandbox of ``config`` (see :func:`benchmark.pipeline.isolation.sandbox_config`) and move this process into it."""
    root, folder = config["root"], config["writable"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here propagates to the machine
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    for path in config["readable"]:
        _bind(root, path)
    for path in config["hidden"]:
        _hide(root, path)
    _bind(root, folder, writable=True)
    for name in DEVICES:
        _bind(root, f"/dev/{name}", writable=True)
    os.makedirs(root + "/proc")
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # before the old /proc goes
    _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _pivot(root)
    _limit(config["limits"])
    _drop(config["user"])
    os.chdir(folder)


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[1]).read_text())
    try:
        enter(config)
    except OSError as err:
        Path(config["writable"], SETUP_ERROR).write_text(" ".join(str(err.strerror or err).split()))
        return SETUP_FAILED
    if config["probe"]:
        return 0
    sys.path[:0] = config["python_path"]
    from benchmark.pipeline.isolated import serve

    serve(Path(config["writable"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
