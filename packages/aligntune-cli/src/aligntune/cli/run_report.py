"""`aligntune report RUN_DIR`, and the report lines `aligntune run` ends with."""

from __future__ import annotations

from pathlib import Path

from aligntune.core.errors import UserInputError
from aligntune.core.report import REPORT, SUMMARY, summary_lines, write_report
from aligntune.core.rundir import RunDirectory


def regenerate(root: Path) -> list[str]:
    """Rewrite the report of the run directory `root` from its files; what to print."""
    run_dir = RunDirectory(root)
    # The report writes over summary.json, report.md, ...: only in a folder aligntune made.
    if not run_dir.holds_run() or not run_dir.events.is_file():
        what = (
            f"is not an aligntune run directory (no {run_dir.marker.name})"
            if not run_dir.holds_run()
            else f"has no events (no {run_dir.events.name})"
        )
        raise UserInputError(
            f"{root} {what}", hint="name the folder `aligntune run` printed as the run directory"
        )
    return report_lines(run_dir, rewrite=True)


def report_lines(run_dir: RunDirectory, rewrite: bool = False) -> list[str]:
    """Where the report is and the summary's first lines; the report is (re)written on this
    host when asked, or when the runner left none newer than its events."""
    summary = run_dir.root / SUMMARY
    stale = not summary.is_file() or summary.stat().st_mtime < run_dir.events.stat().st_mtime
    written = None
    if rewrite or stale:
        files = write_report(run_dir.root)
        written = 4 + len(files.plots) + (files.card is not None)
    lines = [f"report: {run_dir.root / REPORT}"]
    lines += [f"  {line}" for line in summary_lines(run_dir.read_json(summary) or {})]
    if rewrite and written is not None:
        lines.append(f"wrote {written} files ({len(files.plots)} plots) in {run_dir.root}")
    return lines
