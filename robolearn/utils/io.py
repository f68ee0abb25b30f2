"""Atomic file writes (a reader, or a run killed mid-write, never sees a half-written file), and a
checked .npz read."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from robolearn.errors import UserError


def _discard(_: object) -> None:
    return None


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix last: some writers (imageio, numpy) pick the format from it.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write bytes to path atomically (temp file in the same folder, fsync, rename)."""
    _atomic(path, lambda tmp: _discard(tmp.write_bytes(data)))


def atomic_write_text(path: Path, text: str) -> None:
    """Write text to path atomically."""
    _atomic(path, lambda tmp: _discard(tmp.write_text(text, encoding="utf-8")))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write obj as indented JSON atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_pickle(path: Path, obj: Any) -> None:
    """Pickle obj to path atomically."""
    _atomic(path, lambda tmp: _discard(tmp.write_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))))


def atomic_save_with(path: Path, save: Callable[[Path], None]) -> None:
    """Call save(tmp_path) (for libraries that write a file themselves) and rename atomically."""
    _atomic(path, save)


def replace_dir(src: Path, dst: Path) -> None:
    """Move a fully written folder into place; an existing dst is removed after the move."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_npz(path: Path, keys: Sequence[str], what: str, fix: str = "") -> dict[str, Any]:
    """Every array of an .npz file, refusing in one line (naming `what` it should be, and `fix`, a
    sentence after a semicolon) a file that is missing, unreadable or lacks any of `keys`."""
    import numpy as np

    tail = f"; {fix}" if fix else ""
    if not path.is_file():
        raise UserError(f"{what} not found: {path}{tail}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable {what} ({exc}){tail}") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise UserError(f"{what} {path} lacks key(s) {', '.join(missing)}{tail}")
    return arrays


def json_safe(value: Any) -> Any:
    """value as JSON can hold it: numpy arrays and tuples as (nested) lists, numpy floats as floats, and
    NaN and infinities (which JSON has not) as None, through dicts and lists."""
    import math

    import numpy as np

    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    return value
