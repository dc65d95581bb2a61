"""The runners' `export`: a finished run's model written into a new folder, then checked.

    merged   the adapter merged into the base (merge.py), in the training dtype; a full
             fine-tune's final/ copied as it is
    adapter  the adapter alone, its base_model_name_or_path the base as the user named it

Beside the weights: the tokenizer and chat template of final/, the generation config, and
`export.json` (format, dtype, source run, base, the check's numbers, versions). The folder is
written under a hidden name and renamed when complete: a failure removes everything this export
wrote.

Import only after the backend's `import_stack()`.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from aligntune.core.errors import ModelError
from aligntune.core.exports import EXPORT_RECORD, ExportFormat, ExportSource
from aligntune.core.rundir import disk_error
from aligntune.core.version import VERSION
from aligntune.runners.common import checkpoints, export_check, merge
from aligntune.runners.common.export_check import CheckResult
from aligntune.runners.common.models import first_line, load_causal_lm

ADAPTER_FILES = (merge.ADAPTER_CONFIG, merge.ADAPTER_WEIGHTS)
TRAINING_ONLY = ("training_args.bin", "README.md")
"""final/ files an export leaves out: the trainer's pickled arguments, the run's card."""
MODEL_FILES = ("config.json", "generation_config.json")
"""What a merged model takes from its base when final/ lacks it (an adapter needs no config)."""
RECORDED_PACKAGES = ("torch", "transformers", "peft", "safetensors", "accelerate")


@dataclass(frozen=True)
class ExportJob:
    """One export, as the runner sees it."""

    source: ExportSource
    fmt: ExportFormat
    base_dir: Path | None
    """The base model's folder here (a container path, or the hub cache's snapshot); None for a
    full fine-tune, whose final/ is the whole model."""
    base_name: str
    """The base as the export names it: the user's hub id or host path."""
    run_name: str
    """The run directory as the user knows it (the host path)."""
    output: Path

    @property
    def final(self) -> Path:
        """The run's final/ (read only)."""
        return self.source.run_dir / "final"

    @property
    def base(self) -> Path:
        """The base model's folder, which every adapter export reads."""
        if self.base_dir is None:
            raise ModelError("a full fine-tune's export reads no base model")
        return self.base_dir


def base_folder(source: ExportSource, given: str | None) -> Path:
    """The base model's folder here: `--base` when the launcher mounted it, the local path, or
    the hub model's snapshot in the Hugging Face cache."""
    if given:
        folder = Path(given)
    elif source.base_local is not None:
        folder = source.base_local
    else:
        from huggingface_hub import snapshot_download

        try:
            folder = Path(snapshot_download(source.base, revision=source.revision))
        except Exception as exc:  # offline, gated, gone: the base cannot be read
            raise ModelError(
                f"cannot get the base model {source.base}: {first_line(exc)}"
            ) from None
    if not (folder / "config.json").is_file():
        raise ModelError(f"the base model {folder} has no config.json")
    return folder


def _copy(source: Path, target: Path) -> None:
    try:
        shutil.copy2(source, target)
    except OSError as exc:
        raise disk_error(target, exc) from None


def copy_beside(job: ExportJob, skip: tuple[str, ...], from_base: tuple[str, ...]) -> None:
    """final/'s files but `skip` (its tokenizer and chat template among them), then the base's
    files named in `from_base` where final/ has none."""
    for path in sorted(job.final.iterdir()):
        if path.is_file() and path.name not in skip + TRAINING_ONLY:
            _copy(path, job.output / path.name)
    if job.base_dir is None:
        return
    for name in from_base:
        if (job.base_dir / name).is_file() and not (job.output / name).exists():
            _copy(job.base_dir / name, job.output / name)


def write_config(job: ExportJob) -> None:
    """The base's config.json with the dtype the merged weights are stored in."""
    config = json.loads((job.base / "config.json").read_text(encoding="utf-8"))
    config["dtype"] = job.source.dtype
    config.pop("torch_dtype", None)
    config.pop("quantization_config", None)
    (job.output / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def write_adapter(job: ExportJob) -> None:
    """The adapter of final/ with `base_model_name_or_path` naming the base as the user does."""
    config = json.loads((job.final / merge.ADAPTER_CONFIG).read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = job.base_name
    config["revision"] = job.source.revision
    text = json.dumps(config, indent=2) + "\n"
    (job.output / merge.ADAPTER_CONFIG).write_text(text, encoding="utf-8")
    _copy(job.final / merge.ADAPTER_WEIGHTS, job.output / merge.ADAPTER_WEIGHTS)


def _load(folder: Path, model_init: dict[str, Any], device: str) -> Any:
    # As training loaded it (a 4-bit base quantized, bitsandbytes placing it on the GPU).
    model = load_causal_lm(str(folder), model_init, str(folder))
    if device == "cuda" and not model_init.get("quantization"):
        model = model.to(device)
    return model.eval()


def check(job: ExportJob, prompts: list[Any]) -> CheckResult:
    """Reload what was written and compare it with the trained model (export_check.py)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    trained_init = {"dtype": job.source.dtype, "trust_remote_code": False, **job.source.model_init}
    # What was written is plain weights in the training dtype, whatever the base was loaded as.
    plain_init = {k: v for k, v in trained_init.items() if k != "quantization"}
    base: list[Any] | None = None
    if job.source.adapter:
        reference, base = export_check.reference_logits(
            lambda: _load(job.base, trained_init, device), job.final, prompts
        )
    else:
        reference = export_check.next_token_logits(_load(job.final, plain_init, device), prompts)
    gc.collect()
    if job.fmt == "adapter":
        exported, _ = export_check.reference_logits(
            lambda: _load(job.base, trained_init, device), job.output, prompts
        )
        what = "exported adapter on its base"
    else:
        exported = export_check.next_token_logits(_load(job.output, plain_init, device), prompts)
        what = "merged model reloaded from disk"
    return export_check.compare(reference, exported, job.source.dtype, base, what)


def write_model(job: ExportJob, progress: Callable[[str], None]) -> int | None:
    """The format's files in job.output; how many weights a merge changed (None otherwise)."""
    if job.fmt == "adapter":
        write_adapter(job)
        copy_beside(job, ADAPTER_FILES, MODEL_FILES[1:])
        return None
    if not job.source.adapter:
        copy_beside(job, (), MODEL_FILES)
        return None
    changed = merge.merge_shards(
        job.base,
        job.final,
        job.output,
        job.source.dtype,
        quantized=job.source.quantization == "4bit",
        trust_remote_code=bool(job.source.model_init.get("trust_remote_code")),
        progress=progress,
    )
    remote_code = tuple(path.name for path in sorted(job.base.glob("*.py")))  # its auto_map
    copy_beside(job, ADAPTER_FILES, MODEL_FILES + remote_code)
    write_config(job)
    return changed


def record(job: ExportJob, result: CheckResult, changed: int | None, backend: str) -> None:
    """export.json: what this folder is, where it came from, and how it was checked."""
    versions = {"aligntune": VERSION}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    data = {
        "format": job.fmt,
        "dtype": job.source.dtype,
        "source_run": job.run_name,
        "base": job.base_name,
        "base_revision": job.source.revision,
        "peft_method": job.source.peft_method,
        "merged_weights": changed,
        "backend": backend,
        "check": result.as_dict(),
        "versions": versions,
        "time": round(time.time(), 3),
    }
    (job.output / EXPORT_RECORD).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


@contextmanager
def written_whole(output: Path) -> Iterator[Path]:
    """The folder to write `output` in: a hidden sibling renamed to `output` once complete, or
    `output` itself when it is an empty folder already (the launcher's staging folder, which the
    launcher renames). On any failure everything written is removed, and the folder with it."""
    staged = not output.exists()
    folder = output.with_name(f".{output.name}.{os.getpid()}.partial") if staged else output
    try:
        folder.mkdir(exist_ok=not staged)
    except OSError as exc:
        raise disk_error(output, exc) from None
    try:
        yield folder
        checkpoints.make_durable(folder)  # whole after a crash of the machine too
        if staged:
            folder.rename(output)
            checkpoints.fsync(output.parent)
    except BaseException:
        if staged:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            for path in folder.iterdir():
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            # The launcher removes it too, unless it was killed; a mount point stays (EBUSY).
            with suppress(OSError):
                folder.rmdir()
        raise


def run_export(job: ExportJob, backend: str, progress: Callable[[str], None] = print) -> Path:
    """Write and check one export; returns its folder."""
    from transformers import AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()  # a bar per model load; the progress lines say enough
    prompts = export_check.prompt_ids(AutoTokenizer.from_pretrained(str(job.final)))
    with written_whole(job.output) as folder:
        staged = replace(job, output=folder)
        try:
            changed = write_model(staged, progress)
        except OSError as exc:
            raise disk_error(job.output, exc) from None
        result = check(staged, prompts)
        record(staged, result, changed, backend)
    if not result.conclusive:
        progress(
            f"aligntune: warning: the adapter moves the logits by only {result.adapter_effect:.3g}"
            f", within the tolerance: the check cannot tell this merge from the bare base"
        )
    progress(
        f"aligntune: checked: next-token logits within {result.max_abs_diff:.3g} of the trained "
        f"model (tolerance {result.tolerance:.3g}, {job.source.dtype}, {result.prompts} prompts)"
    )
    return job.output
