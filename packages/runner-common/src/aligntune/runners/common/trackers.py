"""`training.report_to`'s local trackers write into the run directory, never a home folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

TRACKER_FOLDERS = {"tensorboard": "TENSORBOARD_LOGGING_DIR", "trackio": "TRACKIO_DIR"}
"""tracker -> the environment variable that points its files at a folder of the run directory
(transformers' TensorBoardCallback reads one, trackio the other when it is first imported)."""

_TRACKIO_FOLDERS = {"TRACKIO_DIR": "", "MEDIA_DIR": "media", "ARTIFACTS_DIR": "artifacts"}
"""The folders trackio's modules copy from TRACKIO_DIR at import, and where each lies in it."""


def point_trackers_at(root: Path, trackers: Sequence[str]) -> None:
    """Make each local tracker write into `root/<tracker>/` of this run."""
    for tracker in trackers:
        variable = TRACKER_FOLDERS.get(tracker)
        if variable is not None:
            os.environ[variable] = str(root / tracker)
    if "trackio" in trackers:
        _retarget_trackio(root / "trackio")


def _retarget_trackio(folder: Path) -> None:
    """Point an already imported trackio at `folder`. trackio reads TRACKIO_DIR once, when it is
    imported, into constants its modules copy; TRL imports it with its trainers, so in a process
    that imported them before (a notebook, a second run) the variable alone comes too late."""
    for name, module in list(sys.modules.items()):
        if name != "trackio" and not name.startswith("trackio."):
            continue
        for constant, below in _TRACKIO_FOLDERS.items():
            if isinstance(getattr(module, constant, None), Path):
                setattr(module, constant, folder / below if below else folder)
