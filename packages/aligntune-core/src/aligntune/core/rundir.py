"""The run directory contract, shared by the runners (who write it) and the launcher (who reads it).

Layout: plan.json, recipe.resolved.yaml, manifest.json, trainer_settings.json, events.jsonl,
status.json, container.log (docker runtime), checkpoints/, final/.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

Status = Literal["running", "finished", "interrupted", "failed"]


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename, so readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


@dataclass(frozen=True)
class RunDirectory:
    """Paths and small readers/writers of one run directory."""

    root: Path

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.resolved.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def trainer_settings(self) -> Path:
        return self.root / "trainer_settings.json"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def log(self) -> Path:
        return self.root / "container.log"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def final(self) -> Path:
        return self.root / "final"

    def write_json(self, path: Path, data: Any) -> None:
        """Write one of the run directory's JSON files atomically."""
        write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

    def read_json(self, path: Path) -> Any:
        """Read one of the run directory's JSON files; None when it does not exist."""
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def write_recipe(self, data: dict[str, Any]) -> None:
        """Save the resolved recipe (every default spelled out, paths as the runner sees them)."""
        write_atomic(self.recipe, yaml.safe_dump(data, sort_keys=False))

    def append_event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one event line to events.jsonl (the only channel the launcher reads)."""
        event = {"event": kind, "time": round(time.time(), 3), **fields}
        self.root.mkdir(parents=True, exist_ok=True)
        with self.events.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event, default=_json_number) + "\n")
            handle.flush()
        return event

    def read_events(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Complete event lines from byte `offset` on, and the offset after the last one."""
        try:
            with self.events.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
        except FileNotFoundError:
            return [], offset
        events = []
        consumed = 0
        for raw in chunk.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break
            consumed += len(raw)
            try:
                events.append(json.loads(raw))
            except ValueError:
                continue
        return events, offset + consumed

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """Every complete event written so far."""
        yield from self.read_events()[0]

    def set_status(self, status: Status, **fields: Any) -> None:
        """Record the run's state in status.json."""
        self.write_json(self.status, {"status": status, "time": time.time(), **fields})

    def read_status(self) -> dict[str, Any] | None:
        """status.json, if written."""
        return self.read_json(self.status)


def _json_number(value: Any) -> Any:
    """Make numpy/torch scalars and other odd values JSON-friendly."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
