"""Where t2 keeps its state: the home directory (`T2_HOME`) and the data directory (`T2_DATA_DIR`)."""

from __future__ import annotations

import os
from pathlib import Path

from t2core.errors import ConfigError, DataError

#: Repository root when running from a checkout (used to find ../shared/datasets).
_REPO_ROOT = Path(__file__).resolve().parent.parent


def t2_home() -> Path:
    """The t2 home directory: `$T2_HOME`, default `~/.t2`. Created on demand."""
    return _make_dir(Path(os.environ.get("T2_HOME") or Path.home() / ".t2").expanduser(), "T2_HOME",
                     "the catalog, artifacts and Prefect results")


def cache_dir() -> Path:
    """Downloaded and converted models: `$T2_CACHE_DIR`, default `T2_HOME/cache`.

    Separate from the home so tests (and several homes) can share one converted model.
    """
    env = os.environ.get("T2_CACHE_DIR")
    return _make_dir(Path(env).expanduser() if env else t2_home() / "cache", "T2_CACHE_DIR",
                     "downloaded and converted models")


def _make_dir(path: Path, var: str, holds: str) -> Path:
    """`path`, created if missing; a file in the way or no permission is one clear error."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{var}={path} is not a directory (a file is in the way); point {var} at a directory "
                          f"for {holds}.") from None
    except OSError as e:
        raise ConfigError(f"{var}={path} cannot be created ({e.strerror}); point {var} at a writable directory "
                          f"for {holds}.") from None
    return path


def default_data_dir_candidates() -> list[Path]:
    """Places searched for the offline datasets when `T2_DATA_DIR` is not set."""
    return [_REPO_ROOT.parent / "shared" / "datasets", Path.cwd().parent / "shared" / "datasets"]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """Resolve the local data directory.

    Order: explicit argument, `$T2_DATA_DIR`, then `../shared/datasets` next to the checkout.
    An explicitly given directory that does not exist is an error (never a silent hub fallback);
    `None` means "no local copy: use the Hugging Face hub".
    """
    explicit = data_dir if data_dir is not None else os.environ.get("T2_DATA_DIR")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            src = "argument data_dir" if data_dir is not None else "T2_DATA_DIR"
            raise DataError(
                f"data directory {str(path)!r} (from {src}) does not exist or is not a directory; "
                "point it at a folder laid out like shared/datasets (see its README), "
                "or unset it to use the Hugging Face hub."
            )
        return path.resolve()
    for cand in default_data_dir_candidates():
        if cand.is_dir():
            return cand.resolve()
    return None
