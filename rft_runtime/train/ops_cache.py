"""Built DeepSpeed ops, kept between trainings.

Each training pod builds the ops it needs (about a minute on CPU) into its own
TORCH_EXTENSIONS_DIR. Sharing that folder on the run storage would share torch's build
lock too, and a pod killed mid-build would leave it locked forever. So the pod builds in
its own folder, and finished builds are copied to and from a cache on the run storage:
whole op folders, renamed into place, never a lock file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from rft_runtime.config.env import OPS_CACHE_ENV, TORCH_EXTENSIONS_ENV


def _built(folder: Path) -> list[Path]:
    """Op folders holding a finished build (a shared object, no lock), directly under the
    extensions folder or one level down (torch adds a version folder when it picks the
    folder itself)."""
    candidates = {so.parent for pattern in ("*/*.so", "*/*/*.so") for so in folder.glob(pattern)}
    return sorted(op for op in candidates if not (op / "lock").exists())


def _copy_into(op: Path, source_root: Path, target_root: Path) -> None:
    target = target_root / op.relative_to(source_root)
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{op.name}."))
    try:
        shutil.copytree(op, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns("lock"))
        os.rename(tmp, target)
    except OSError:  # another rank or pod was faster, or the cache is not writable
        shutil.rmtree(tmp, ignore_errors=True)


def _folders() -> tuple[Path, Path] | None:
    cache, local = os.environ.get(OPS_CACHE_ENV), os.environ.get(TORCH_EXTENSIONS_ENV)
    return (Path(cache), Path(local)) if cache and local else None


def copy_builds(source: Path, target: Path) -> int:
    """Copy every finished build under `source` that `target` lacks; how many were copied.
    (The local executor seeds a run's cache from the user's cache and back with it.)"""
    if not source.is_dir():
        return 0
    copied = 0
    for op in _built(source):
        if not (target / op.relative_to(source)).exists():
            with contextlib.suppress(OSError):
                _copy_into(op, source, target)
                copied += 1
    return copied


# inductor's own bookkeeping, and C++ precompiled headers (about 1 GiB, rebuilt on demand)
COMPILE_CACHE_SKIPPED = frozenset({"locks", "precompiled_headers"})


def copy_compiled(source: Path, target: Path, replace_older: bool = False) -> int:
    """Copy the sampler's compiled kernels (torch inductor's content-addressed cache) that
    `target` lacks, file by file, each renamed into place; how many were copied. With it a
    fresh run's sampler skips compiling the model: 43 s to start instead of 92 on 2 CPUs.

    `replace_older` is for caches whose file names are not content hashes (vLLM's model
    info, one file per architecture holding the hash of its source): a newer file replaces
    an older one, so an entry that went stale with an upgrade is not handed on forever."""
    if not source.is_dir():
        return 0
    copied = 0
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts[0] in COMPILE_CACHE_SKIPPED or not path.is_file():
            continue
        destination = target / relative
        # dot files are temporaries being written (inductor's and this function's own)
        if path.name.startswith(".") or not _wanted(path, destination, replace_older):
            continue
        with contextlib.suppress(OSError):
            destination.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=destination.parent, prefix=f".{path.name}.")
            os.close(handle)
            try:
                shutil.copy2(path, tmp)
                os.rename(tmp, destination)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            copied += 1
    return copied


def _wanted(source: Path, destination: Path, replace_older: bool) -> bool:
    if not destination.exists():
        return True
    return replace_older and source.stat().st_mtime > destination.stat().st_mtime


def restore() -> None:
    """Copy cached builds into this pod's extensions folder (before DeepSpeed starts)."""
    folders = _folders()
    if folders is None or not folders[0].is_dir():
        return
    cache, local = folders
    for op in _built(cache):
        with contextlib.suppress(OSError):
            _copy_into(op, cache, local)


def save() -> None:
    """Copy this pod's finished builds into the cache (after DeepSpeed started)."""
    folders = _folders()
    if folders is None or not folders[1].is_dir():
        return
    cache, local = folders
    for op in _built(local):
        with contextlib.suppress(OSError):
            _copy_into(op, local, cache)
