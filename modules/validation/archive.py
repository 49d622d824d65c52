"""``.zip`` archives of an adapter folder: checked entry by entry, then extracted."""

from __future__ import annotations

import hashlib
import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from modules.validation.common import (
    ADAPTER_CONFIG,
    ADAPTER_FILES,
    CHUNK_BYTES,
    AdapterInvalid,
    LocalFile,
    Problem,
)

# What problems call an archive whose own name is not known: its path is a
# temporary file of the server's, which means nothing to the person uploading.
UNNAMED_ARCHIVE = "the uploaded .zip"


def extract_adapter_zip(
    archive: Path,
    destination: Path,
    *,
    max_uncompressed_bytes: int,
    max_entries: int = 1000,
    name: str = UNNAMED_ARCHIVE,
) -> dict[str, LocalFile]:
    """Extract the adapter files of a zip into ``destination``, hashing them.

    Every entry is checked before anything is written: no absolute path, no
    ``..``, no link, no encryption, and a bounded total size. The adapter files
    may sit at the root or in one folder; other files (tokenizers, training
    logs…) are not part of a module and are left in the archive. Problems
    name the archive ``name``, the file's name as its owner knows it.
    """
    file = name
    try:
        with zipfile.ZipFile(archive) as zf:
            entries = zf.infolist()
            _check_zip_entries(entries, file, max_uncompressed_bytes, max_entries)
            wanted = _adapter_entries(entries, file)
            return {
                name: _extract_entry(zf, entry, destination / name, file, max_uncompressed_bytes)
                for name, entry in wanted.items()
            }
    except zipfile.BadZipFile as exc:
        raise AdapterInvalid.single(file, f"is not a readable zip archive ({exc})") from exc
    except (zlib.error, NotImplementedError, EOFError) as exc:
        raise AdapterInvalid.single(file, f"is a corrupt zip archive ({exc})") from exc


def _check_zip_entries(entries, file: str, max_bytes: int, max_entries: int) -> None:
    if len(entries) > max_entries:
        raise AdapterInvalid.single(file, f"has {len(entries)} entries; at most {max_entries}")
    problems = []
    for entry in entries:
        name = entry.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            problems.append(Problem(file, f"entry {name!r} has an absolute path"))
        elif ".." in parts:
            problems.append(Problem(file, f"entry {name!r} points outside the archive ('..')"))
        if stat.S_ISLNK(entry.external_attr >> 16):
            problems.append(Problem(file, f"entry {name!r} is a symbolic link"))
        if entry.flag_bits & 0x1:
            problems.append(Problem(file, f"entry {name!r} is encrypted"))
    total = sum(entry.file_size for entry in entries)
    if total > max_bytes:
        problems.append(
            Problem(file, f"expands to {total} bytes, over the limit of {max_bytes} bytes")
        )
    if problems:
        raise AdapterInvalid(problems)


def _adapter_entries(entries, file: str) -> dict[str, zipfile.ZipInfo]:
    configs = [e for e in entries if PurePosixPath(e.filename).name == ADAPTER_CONFIG]
    if not configs:
        raise AdapterInvalid.single(file, f"holds no {ADAPTER_CONFIG}")
    if len(configs) > 1:
        names = ", ".join(repr(e.filename) for e in configs)
        raise AdapterInvalid.single(
            file, f"holds more than one adapter ({names}); upload one adapter folder per module"
        )
    folder = PurePosixPath(configs[0].filename).parent
    return {
        PurePosixPath(e.filename).name: e
        for e in entries
        if not e.is_dir()
        and PurePosixPath(e.filename).parent == folder
        and PurePosixPath(e.filename).name in ADAPTER_FILES
    }


def _extract_entry(zf, entry, target: Path, file: str, max_bytes: int) -> LocalFile:
    # The sizes in the archive's directory can lie; the bytes actually
    # inflated are counted as well, so a crafted entry cannot exceed the limit.
    digest = hashlib.sha256()
    written = 0
    with zf.open(entry) as source, target.open("wb") as sink:
        while chunk := source.read(CHUNK_BYTES):
            written += len(chunk)
            if written > max_bytes or written > entry.file_size:
                raise AdapterInvalid.single(
                    file, f"entry {entry.filename!r} inflates beyond its declared size"
                )
            digest.update(chunk)
            sink.write(chunk)
    return LocalFile(path=target, size=written, sha256=digest.hexdigest())
