"""Real public datasets replayed as sensor streams (demo, benchmarks, detector backtests).

The files are not shipped with the package; they live in a shared `datasets/` folder next to
the checkout (or wherever `URBANPULSE_DATASETS` points). This module only finds that folder,
so each dataset module stays about its own file format.
"""

from __future__ import annotations

from urbanpulse.errors import UrbanpulseError

import os
from pathlib import Path

__all__ = ["DATASETS_ENV", "DatasetError", "DatasetNotFoundError", "datasets_root"]

DATASETS_ENV = "URBANPULSE_DATASETS"


class DatasetError(UrbanpulseError, ValueError):
    """A dataset file does not look the way its reader expects (columns, rows, values)."""


class DatasetNotFoundError(UrbanpulseError, FileNotFoundError):
    """The dataset folder or files cannot be found; the message says where we looked."""


def _candidates(start: Path) -> list[Path]:
    """`shared/datasets` in `start` and each of its parents.

    Looking in every parent also covers `../shared/datasets` seen from a checkout such as
    `/work/main` (it is `/work/shared/datasets`).
    """
    start = start.resolve()
    return [p / "shared" / "datasets" for p in (start, *start.parents)]


def datasets_root() -> Path:
    """The folder holding one sub-folder per dataset.

    Order: `$URBANPULSE_DATASETS` (must exist if set: a wrong value should fail loudly, not fall
    back to some other copy), then `shared/datasets` found walking up from the current directory,
    then walking up from this package's location (for tools run from elsewhere).
    """
    env = os.environ.get(DATASETS_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(
                f"{DATASETS_ENV}={env!r} is not a directory. Point it at the folder that holds "
                "the dataset sub-folders (e.g. .../shared/datasets), or unset it."
            )
        return root
    searched: list[Path] = []
    for start in (Path.cwd(), Path(__file__).parent):
        for candidate in _candidates(start):
            if candidate.is_dir():
                return candidate
            searched.append(candidate)
    raise DatasetNotFoundError(
        "Cannot find the datasets folder: no 'shared/datasets' above the current directory or "
        f"the urbanpulse package. Set {DATASETS_ENV} to the folder that holds the dataset "
        f"sub-folders (looked in {len(searched)} places, first {searched[0] if searched else '-'})."
    )
