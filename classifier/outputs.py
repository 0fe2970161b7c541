"""Writing outputs without losing anything of the user's.

Every file is written under a temporary name in its destination folder and renamed into place
when complete, so a reader never sees half a file. A run's files are staged together and moved
in one burst of renames. Nothing else in the destination is touched: other files and folders,
and the folder's permissions, stay as they were. Files of an earlier run that the new run does not
write again are removed only when that earlier run's manifest (`MANIFEST`) lists them, and a
file of the user's with the name of an output is never replaced unless asked (`force`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

from classifier.errors import InputError

# Lists the files the last run wrote into a folder; only those may be replaced or removed.
MANIFEST = ".head-roles-files.json"


def foreign_files(out_dir: str | Path, names) -> list[str]:
    """Those of `names` already in `out_dir` that no manifest of this tool lists: the user's files."""
    out_dir = Path(out_dir)
    ours = set(earlier_files(out_dir))
    return [n for n in names if n not in ours and ((out_dir / n).exists() or (out_dir / n).is_symlink())]


def refuse_foreign_files(out_dir: str | Path, names, *, option: str = "--out") -> None:
    """InputError when writing `names` into `out_dir` would replace a file this tool did not write."""
    foreign = foreign_files(out_dir, names)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise InputError(
            f"{option} {out_dir}: {shown} {'is' if len(foreign) == 1 else 'are'} already there and not written by "
            f"head-roles (no {MANIFEST} lists {'it' if len(foreign) == 1 else 'them'}); "
            "choose another folder, or pass --force to replace"
        )


def check_output_dir(path: str | Path, *, option: str = "--out", outputs=(), force: bool = False) -> Path:
    """The output folder, checked before any work: a folder (or creatable), writable, and (unless
    `force`) holding no file of the user's under one of the `outputs` names.

    Nothing is created: writability is tried with a real temporary file in the folder, or in its
    nearest existing parent when it does not exist yet (permission bits say little for root or
    on special file systems such as `/proc`), so a run that fails later leaves no empty folder.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: mkdir would fail later
            raise InputError(f"{option} {path}: {existing} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        raise InputError(f"{option} {path}: exists and is not a folder{where}" if existing == path
                         else f"{option} {path}: cannot be created{where}")
    try:
        handle, probe = tempfile.mkstemp(prefix=".tmp-head-roles-probe-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        where = "there" if existing == path else f"in {existing}"
        raise InputError(f"{option} {path}: cannot write {where} ({err.strerror or err})") from None
    if outputs and not force and path.is_dir():
        refuse_foreign_files(path, outputs, option=option)
    return path


def check_output_file(path: str | Path, *, option: str = "--out") -> Path:
    """An output file's path, checked before any work: not a folder, in a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder, not a file")
    check_output_dir(path.parent, option=option)
    return path


def _as_bytes(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def write_file(path: str | Path, content: str | bytes) -> Path:
    """Write one file atomically (temporary sibling, then rename); creates its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(_as_bytes(content))
        os.chmod(staging, _default_mode())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path


def _default_mode() -> int:
    """0o666 less the umask, as an ordinary open() would create the file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def earlier_files(out_dir: Path) -> list[str]:
    """Names the last run wrote into `out_dir`, from its manifest (empty when there is none)."""
    try:
        names = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str) and "/" not in n and not n.startswith(".")] if isinstance(names, list) else []


def write_files(out_dir: str | Path, files: Mapping[str, str | bytes], *, force: bool = False) -> Path:
    """Write a run's files (plain names, no folders) into `out_dir` as one unit.

    All files are first written into a hidden staging folder inside `out_dir`, then renamed into
    place; files listed by the earlier manifest and not written now are removed; other files are
    never touched. A file of the same name that no manifest lists is the user's: InputError,
    unless `force`.
    """
    out_dir = Path(out_dir)
    bad = [name for name in files if "/" in name or name.startswith(".") or not name]
    if bad:
        raise ValueError(f"output names must be plain file names: {', '.join(bad)}")
    if not force:
        refuse_foreign_files(out_dir, files)
    out_dir.mkdir(parents=True, exist_ok=True)
    stale = [n for n in earlier_files(out_dir) if n not in files]
    staging = Path(tempfile.mkdtemp(prefix=".tmp-head-roles-", dir=out_dir))
    try:
        mode = _default_mode()
        for name, content in files.items():
            (staging / name).write_bytes(_as_bytes(content))
            os.chmod(staging / name, mode)
        (staging / MANIFEST).write_text(json.dumps(sorted(files)) + "\n")
        os.chmod(staging / MANIFEST, mode)
        for name in [*files, MANIFEST]:
            target = out_dir / name
            if target.is_dir() and not target.is_symlink():
                raise InputError(f"{target}: a folder is in the way of an output file")
            os.replace(staging / name, target)
        for name in stale:
            target = out_dir / name
            if target.is_file() or target.is_symlink():
                target.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
