"""`aligntune export`: the formats, where an export goes, and what a run must hold to be exported.

Read from the run directory alone (status.json, plan.json, recipe.resolved.yaml,
trainer_settings.json, final/), without the training stack, so the launcher refuses a bad export
before any container starts and the runner checks the same things again where it runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

from aligntune.core.errors import BackendUnavailableError, UsageError, UserInputError
from aligntune.core.outputdir import output_dir_problem
from aligntune.core.paths import local_path
from aligntune.core.rundir import RunDirectory

ExportFormat = Literal["merged", "adapter", "gguf"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("merged", "adapter", "gguf")
"""`--format`: the adapter merged into its base, the adapter alone, or one GGUF file."""
DEFAULT_FORMAT: ExportFormat = "merged"
"""The model a user can load and serve without peft (for a full fine-tune: final/, checked)."""
EXPORT_RECORD = "export.json"
"""The file in every export folder that says what it is and how it was checked."""
GGUF_UNAVAILABLE = (
    "gguf export is not available in this image: no maintained converter from Hugging Face "
    "weights to GGUF installs with pip (llama.cpp's convert_hf_to_gguf.py ships only with its "
    "source tree)"
)
GGUF_HINT = (
    "export --format merged, then convert that folder with llama.cpp's convert_hf_to_gguf.py "
    "(see docs/export.md)"
)


@dataclass(frozen=True)
class ExportSource:
    """A finished run, as an export needs it."""

    run_dir: Path
    backend: str
    image: str | None
    device: str
    peft_method: str
    """lora, qlora or full."""
    base: str
    """The base model as the user named it: a hub id or an absolute host path."""
    base_local: Path | None
    """The base model's folder on the host, when it is local."""
    revision: str | None
    dtype: str
    """The dtype the model trained in (trainer_settings.json), which a merge writes."""
    quantization: str | None
    """4bit or 8bit for a quantized base (QLoRA), else None."""
    model_init: dict[str, Any]
    """How the run loaded its model (trainer_settings.json): dtype, trust_remote_code,
    quantization; the export's check loads the base the same way."""

    @property
    def adapter(self) -> bool:
        """Whether final/ holds a LoRA adapter rather than a whole model."""
        return self.peft_method != "full"

    def default_output(self, fmt: ExportFormat) -> Path:
        """Beside the run, never inside it: RUN_DIR-merged, RUN_DIR-adapter, RUN_DIR-gguf."""
        return self.run_dir.parent / f"{self.run_dir.name}-{fmt}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"{path} is missing; the run directory is incomplete") from None
    except (OSError, ValueError) as exc:
        raise UserInputError(f"{path} cannot be read: {exc}") from None


def host_reference(reference: str, run_dir: Path, plan: dict[str, Any]) -> str:
    """The model as the user named it: a container path of a docker run becomes the host path
    mounted there (plan.json lists the mounts), a relative path is taken from the run directory,
    a hub id stays as it is."""
    launch = plan.get("launch") or {}
    mounts = (launch.get("container") or {}).get("mounts") or []
    if launch.get("runtime") == "docker" and reference.startswith("/"):
        path = PurePosixPath(reference)
        for mount in mounts:
            target = PurePosixPath(mount["target"])
            if path == target or path.is_relative_to(target):
                return str(Path(mount["source"]) / path.relative_to(target))
    local = local_path(reference, run_dir)
    return str(local) if local is not None else reference


def read_source(run_root: Path) -> ExportSource:
    """The finished run at `run_root`; a clear UserInputError for anything else (missing, not a
    run, not finished, no final/). Reads only; writes nothing."""
    run = RunDirectory(run_root.resolve())
    if not run.root.is_dir():
        raise UserInputError(
            f"{run_root}: no such run directory", hint="name the folder `aligntune run` wrote"
        )
    if not run.holds_run():
        raise UserInputError(
            f"{run_root} is not an aligntune run directory (no {run.marker.name})",
            hint="name the folder `aligntune run` wrote",
        )
    status = (run.read_status() or {}).get("status")
    if status != "finished":
        raise UserInputError(
            f"{run_root}: the run is {status or 'not started'}, not finished; only a finished "
            "run has a final model to export",
            hint="finish it first: the same `aligntune run` command resumes it",
        )
    if not (run.final.is_dir() and any(run.final.iterdir())):
        raise UserInputError(
            f"{run_root}: the run finished without final/ (output.save_final was false)",
            hint="export needs final/; train with output.save_final: true",
        )
    plan = _read_json(run.plan)
    try:
        recipe = yaml.safe_load(run.recipe.read_text(encoding="utf-8"))
    except FileNotFoundError:
        recipe = {}
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UserInputError(f"{run.recipe} cannot be read: {exc}") from None
    settings = _read_json(run.trainer_settings)
    model = (recipe or {}).get("model") or {}
    reference = model.get("name_or_path")
    if not reference:
        raise UserInputError(f"{run.recipe} names no model.name_or_path")
    base = host_reference(str(reference), run.root, plan)
    base_local = local_path(base, run.root)
    init = settings.get("model_init") or {}
    return ExportSource(
        run_dir=run.root,
        backend=str(plan["backend"]),
        image=plan.get("image"),
        device=str(plan.get("device", "cpu")),
        peft_method=str((model.get("peft") or {}).get("method", "full")),
        base=base,
        base_local=base_local,
        revision=model.get("revision"),
        dtype=str(init.get("dtype", "float32")),
        quantization=init.get("quantization"),
        model_init=dict(init),
    )


def check_format(source: ExportSource, fmt: str | None) -> ExportFormat:
    """The format to write (default: merged); refused when this run cannot give it."""
    chosen = fmt or DEFAULT_FORMAT
    if chosen not in EXPORT_FORMATS:
        raise UsageError(f"--format {chosen!r}: use {', '.join(EXPORT_FORMATS)}")
    if chosen == "gguf":
        raise BackendUnavailableError(GGUF_UNAVAILABLE, hint=GGUF_HINT)
    if chosen == "adapter" and not source.adapter:
        raise UserInputError(
            f"{source.run_dir} is a full fine-tune: it has no adapter to export",
            hint="use --format merged (a copy of final/, checked)",
        )
    if chosen == "merged" and source.quantization == "8bit":
        raise BackendUnavailableError(
            "merging an adapter trained on an 8-bit base is not supported",
            hint="use --format adapter and load it on the 8-bit base",
        )
    return chosen


def check_base(source: ExportSource) -> None:
    """Refuse a run whose local base model is gone (every format but a full run's needs it)."""
    if source.adapter and source.base_local is not None and not source.base_local.is_dir():
        raise UserInputError(
            f"the base model {source.base} is not there any more; the export reads it",
            hint="put the base model back where the run found it",
        )


def check_export_output(output: Path, run_dir: Path) -> Path:
    """The export folder, absolute: new, outside the run, somewhere a run could write."""
    target = output.resolve()
    if target.exists() or target.is_symlink():
        raise UserInputError(
            f"{output} already exists; an export never writes over a folder",
            hint="choose another --output, or remove that folder",
        )
    if target.is_relative_to(run_dir) or run_dir.is_relative_to(target):
        raise UserInputError(
            f"--output {output} is inside the run directory {run_dir}; an export never "
            "touches the run",
            hint="choose a folder outside the run directory",
        )
    why = output_dir_problem(target)
    if why:
        raise UserInputError(f"--output {output} {why}")
    if not target.parent.is_dir():
        raise UserInputError(
            f"--output {output}: the folder {target.parent} does not exist",
            hint="create it first, or choose another --output",
        )
    return target
