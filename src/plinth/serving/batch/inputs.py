"""Finding the input: one Parquet or CSV file, or a folder of them, and where the output may go."""

from __future__ import annotations

import os
from dataclasses import dataclass

from plinth.core.errors import InvalidInput

PARQUET = (".parquet", ".pq")
CSV = (".csv",)


@dataclass(frozen=True)
class Input:
    """The files to read, in order, and their format ("parquet" or "csv")."""

    path: str
    files: tuple[str, ...]
    fmt: str
    folder: bool

    def identity(self) -> list[tuple[str, int, int]]:
        """(path, size, mtime_ns) of every file: changes whenever a file is replaced or edited."""
        return [(f, (st := os.stat(f)).st_size, st.st_mtime_ns) for f in self.files]

    def where(self, first: int, count: int) -> str:
        """`rows 0-99999 of data.parquet`, for error messages."""
        return f"rows {first}-{first + count - 1} of {self.path}"


def open_input(path: str | os.PathLike[str]) -> Input:
    """The files under `path` and their format; InvalidInput for anything that cannot be read."""
    full = os.path.abspath(os.fspath(path))
    if os.path.isdir(full):
        files = _folder_files(full)
        formats = {fmt for f in files if (fmt := _format_of(f))}
        if len(formats) > 1:
            raise InvalidInput(f"Input folder {full!r} mixes Parquet and CSV files; use one format.")
        return Input(full, tuple(files), formats.pop(), True)
    if not os.path.isfile(full):
        raise InvalidInput(f"Input {os.fspath(path)!r} does not exist.")
    fmt = _format_of(full)
    if fmt is None:
        raise InvalidInput(f"Cannot read {os.fspath(path)!r}: use a .parquet, .pq or .csv file, or a folder.")
    return Input(full, (full,), fmt, False)


def check_output(output: str | os.PathLike[str], source: Input) -> str:
    """The output's absolute path; InvalidInput unless it is a .parquet file outside the input."""
    out = os.path.abspath(os.fspath(output))
    if not out.lower().endswith(PARQUET):
        raise InvalidInput(f"Output {os.fspath(output)!r} must be a .parquet file.")
    if os.path.isdir(out):
        raise InvalidInput(f"Output {os.fspath(output)!r} is a folder; name a .parquet file.")
    if out in source.files or (source.folder and out.startswith(source.path + os.sep)):
        raise InvalidInput(
            f"Output {os.fspath(output)!r} would overwrite or join the input; write elsewhere."
        )
    return out


def _format_of(path: str) -> str | None:
    lower = path.lower()
    return "parquet" if lower.endswith(PARQUET) else "csv" if lower.endswith(CSV) else None


def _folder_files(folder: str) -> list[str]:
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for name in sorted(names):
            if name.startswith((".", "_")):
                continue
            if _format_of(name) is None:
                raise InvalidInput(
                    f"Input folder {folder!r} holds {os.path.relpath(os.path.join(root, name), folder)!r}, "
                    "which is not .parquet, .pq or .csv; move it out (or prefix it with '_')."
                )
            found.append(os.path.join(root, name))
    if not found:
        raise InvalidInput(f"Input folder {folder!r} holds no .parquet or .csv files.")
    return sorted(found, key=lambda f: os.path.relpath(f, folder).split(os.sep))
