"""Where an export's files live: a local folder, or any fsspec URL (``abfs://``, ``s3://``, ``memory://``...).

Both stores take paths relative to the export's root (``thread_id=<id>/messages.csv``) and check them:
no absolute path, no ``..``, no empty part. The export never writes outside its root.

**Local folders** are private and never followed through links: folders are made 0700 and files 0600
*when they are created* (``os.mkdir``/``os.open`` with the mode, no chmod afterwards), and every path is
walked one folder at a time with ``O_NOFOLLOW``, so a ``thread_id=...`` folder or a file that is a
symbolic link is refused (:class:`UnsafePathError`) rather than written, truncated or deleted through.
Finished files appear atomically: written to a hidden temporary name, ``fsync``'d, renamed.

**Other stores** (:class:`FsspecStore`) have no append, no truncate and often no atomic rename; an
object appears whole when the file written to it is closed, which is what the export relies on. The
optional dependencies are the ``chatnb[cloud]`` extra (fsspec, adlfs); ``file://`` URLs are local folders.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["FsspecStore", "LocalStore", "Pending", "Store", "UnsafePathError", "open_store"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_MODE = 0o600
_DIR_MODE = 0o700


class UnsafePathError(OSError):
    """A path of the export is a symbolic link, not a folder where one is expected, or escapes the root."""


def parts_of(rel: str) -> list[str]:
    """The parts of a relative path, checked.

    Raises:
        UnsafePathError: for an absolute path, ``..``, ``.``, an empty part or a NUL character.
    """
    parts = rel.split("/")
    if (
        not rel
        or rel.startswith("/")
        or "\\" in rel
        or "\0" in rel
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise UnsafePathError(f"{rel!r} is not a path inside the export")
    return parts


class Pending:
    """A file being written: ``fh`` to write to, ``commit()`` to make it appear whole, or ``discard()``."""

    def __init__(self, fh: IO[bytes], commit: Any, discard: Any) -> None:
        self.fh = fh
        self._commit = commit
        self._discard = discard

    def commit(self) -> int:
        """Make the file durable and visible under its name; its size."""
        size: int = self._commit()
        return size

    def discard(self) -> None:
        self._discard()


class Store:
    """The interface both stores share (see the module doc)."""

    url: str
    local: bool = False

    def display(self, rel: str) -> str:
        """A path or URL of ``rel`` to show to people."""
        return f"{self.url.rstrip('/')}/{rel}"

    def create(self, rel: str) -> Pending:
        raise NotImplementedError

    def read(self, rel: str, start: int = 0, end: int | None = None) -> bytes:
        raise NotImplementedError

    def size(self, rel: str) -> int | None:
        """The size of the file ``rel``, ``None`` if there is none."""
        raise NotImplementedError

    def remove(self, rel: str) -> None:
        raise NotImplementedError

    def files(self, rel_dir: str) -> dict[str, int]:
        """Every regular file below ``rel_dir`` (relative to the root) with its size; ``{}`` if none."""
        raise NotImplementedError


class LocalStore(Store):
    """A local folder (created 0700 if it does not exist)."""

    local = True

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        path = Path(root).expanduser()
        if create:
            _make_private_dirs(path)
        elif not path.is_dir():
            why = "it is a file" if path.exists() else "the folder does not exist"
            raise ValueError(f"no export at {path}: {why}")
        self.root = path.resolve()
        self.url = str(self.root)

    def display(self, rel: str) -> str:
        return str(self.root / rel)

    @contextmanager
    def _dir(self, parts: list[str], *, create: bool) -> Iterator[int]:
        """A file descriptor of the folder ``root/parts``, walked without following links."""
        fd = os.open(self.root, _DIR_FLAGS & ~os.O_NOFOLLOW)
        try:
            for i, part in enumerate(parts):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, _DIR_MODE, dir_fd=fd)
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise _unsafe(self.root.joinpath(*parts[: i + 1])) from None
                    raise
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _open(self, rel: str, flags: int, *, create_dirs: bool) -> tuple[int, list[str]]:
        parts = parts_of(rel)
        with self._dir(parts[:-1], create=create_dirs) as dfd:
            try:
                fd = os.open(
                    parts[-1], flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), _FILE_MODE, dir_fd=dfd
                )
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise _unsafe(self.root / rel) from None
                raise
        return fd, parts

    def open_append(self, rel: str) -> IO[bytes]:
        """``rel`` opened to append (created 0600 if new)."""
        fd, _ = self._open(rel, os.O_WRONLY | os.O_APPEND | os.O_CREAT, create_dirs=True)
        return os.fdopen(fd, "ab")

    def create(self, rel: str) -> Pending:
        parts = parts_of(rel)
        tmp_rel = "/".join([*parts[:-1], f".{parts[-1]}.tmp"])
        fd, _ = self._open(tmp_rel, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, create_dirs=True)
        fh = os.fdopen(fd, "wb")

        def commit() -> int:
            fh.flush()
            os.fsync(fh.fileno())
            size = fh.tell()
            fh.close()
            with self._dir(parts[:-1], create=False) as dfd:
                os.replace(f".{parts[-1]}.tmp", parts[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
                os.fsync(dfd)
            return size

        def discard() -> None:
            fh.close()
            self.remove(tmp_rel)

        return Pending(fh, commit, discard)

    def read(self, rel: str, start: int = 0, end: int | None = None) -> bytes:
        fd, _ = self._open(rel, os.O_RDONLY, create_dirs=False)
        with os.fdopen(fd, "rb") as fh:
            fh.seek(start)
            return fh.read() if end is None else fh.read(max(end - start, 0))

    def size(self, rel: str) -> int | None:
        parts = parts_of(rel)
        try:
            with self._dir(parts[:-1], create=False) as dfd:
                st = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def truncate(self, rel: str, size: int) -> None:
        fd, _ = self._open(rel, os.O_WRONLY, create_dirs=False)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, rel: str) -> None:
        """Remove the file (or the link itself: never what it points to); nothing if it is gone."""
        parts = parts_of(rel)
        try:
            with self._dir(parts[:-1], create=False) as dfd:
                os.unlink(parts[-1], dir_fd=dfd)
        except FileNotFoundError:
            pass

    def files(self, rel_dir: str) -> dict[str, int]:
        found: dict[str, int] = {}
        try:
            with self._dir(parts_of(rel_dir) if rel_dir else [], create=False) as dfd:
                self._walk(dfd, rel_dir, found)
        except FileNotFoundError:
            pass
        return found

    def _walk(self, dfd: int, rel: str, found: dict[str, int]) -> None:
        for entry in os.scandir(dfd):
            sub = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=dfd)
                try:
                    self._walk(child, sub, found)
                finally:
                    os.close(child)
            elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                st = entry.stat(follow_symlinks=False)
                found[sub] = st.st_size if stat.S_ISREG(st.st_mode) else -1  # -1: a link, never followed


def _unsafe(path: Path) -> UnsafePathError:
    return UnsafePathError(
        f"{path} is a symbolic link (or not a folder); the export does not write, truncate or delete "
        "through links: remove it, or export into another directory"
    )


def _make_private_dirs(path: Path) -> None:
    """``mkdir -p`` with every folder it creates 0700 from the start."""
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=_DIR_MODE)


class FsspecStore(Store):
    """A folder on any fsspec file system: object stores (Azure Blob / ADLS Gen2, S3, GCS), memory..."""

    def __init__(self, fs: Any, root: str, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url

    def _path(self, rel: str) -> str:
        return f"{self.root}/{'/'.join(parts_of(rel))}" if rel else self.root

    def create(self, rel: str) -> Pending:
        path = self._path(rel)
        fh = self.fs.open(path, "wb")

        def commit() -> int:
            size: int = fh.tell()
            fh.close()  # an object store makes the object appear, whole, now
            return size

        def discard() -> None:
            try:
                fh.close()
            finally:
                self.remove(rel)

        return Pending(fh, commit, discard)

    def read(self, rel: str, start: int = 0, end: int | None = None) -> bytes:
        data: bytes = self.fs.cat_file(self._path(rel), start=start, end=end)
        return data

    def size(self, rel: str) -> int | None:
        try:
            info = self.fs.info(self._path(rel))
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(rel))

    def files(self, rel_dir: str) -> dict[str, int]:
        base = self._path(rel_dir)
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        prefix = self.root + "/"
        out = {}
        for path, info in found.items():
            path = path.rstrip("/")
            if info.get("type") == "file" and path.startswith(prefix):
                out[path[len(prefix) :]] = int(info["size"])
        return out


def open_store(
    out: str | os.PathLike[str], storage_options: dict[str, Any] | None = None, *, create: bool = True
) -> Store:
    """The store of ``out``: a local path (or ``file://`` URL; created 0700 if missing and ``create``) or
    an fsspec URL.

    Raises:
        ValueError: for an fsspec URL when fsspec (``pip install 'chatnb[cloud]'``) or the protocol's
            package is not installed, or ``storage_options`` with a local path.
    """
    text = os.fspath(out)
    if "://" not in text or text.startswith(("file://", "local://")):
        if storage_options:
            raise ValueError("storage_options are for fsspec URLs (abfs://, s3://...), not local paths")
        return LocalStore(text.split("://", 1)[1] if "://" in text else text, create=create)
    try:
        import fsspec
    except ImportError:
        raise ValueError(f"{text} needs fsspec: pip install 'chatnb[cloud]'") from None
    try:
        fs, root = fsspec.core.url_to_fs(text, **(storage_options or {}))
    except (ImportError, ValueError) as exc:
        raise ValueError(f"cannot open {text}: {exc}") from None
    return FsspecStore(fs, root, text)
