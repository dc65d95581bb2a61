"""`training.report_to`'s local trackers write into the run directory, never a home folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

TRACKER_FOLDERS = {"tensorboard": "TENSORBOARD_LOGGING_DIR", "trackio": "TRACKIO_DIR"}
"""tracker -> the environment variable that points its files at a folder of the run directory
(transformers' TensorBoardCallback reads one, trackio the other when it is first imported)."""


def point_trackers_at(root: Path, trackers: Sequence[str]) -> None:
    """Make each local tracker write into `root/<tracker>/` of this run."""
    for tracker in trackers:
        variable = TRACKER_FOLDERS.get(tracker)
        if variable is not None:
            os.environ[variable] = str(root / tracker)
