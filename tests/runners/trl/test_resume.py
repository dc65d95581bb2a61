"""Checkpoints you can trust: bitwise resume, skipped half-written saves, SIGTERM, refusals."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from safetensors.torch import load_file
from transformers import TrainerCallback
from trl_helpers import make_run, read_events, tree_snapshot

from aligntune.core.errors import ResumeRefused
from aligntune.core.rundir import RunDirectoryError
from aligntune.runners.common.errors import RunInterrupted, TrainingDivergedError

pytestmark = pytest.mark.training

FULL_SFT = {
    "model": {"peft": {"method": "full"}},
    "training": {"max_steps": 6, "save_steps": 3, "learning_rate": 1e-3, "batch_size": 4},
}


class SignalAtStep(TrainerCallback):
    """Send this process a real signal at the end of one step (what an orchestrator does)."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        self.step, self.signum = step, signum

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def _interrupted_run(recipe: Path, run_dir: Path, step: int) -> RunInterrupted:
    run = make_run(recipe, run_dir)
    # Added first so the signal lands before the runner's callback checks for it.
    run.trainer.callback_handler.callbacks.insert(0, SignalAtStep(step))
    with pytest.raises(RunInterrupted) as caught:
        run.train()
    return caught.value


# KTO too: TRL pairs its rows with their batch neighbours in file order, which a resume must keep.
@pytest.mark.parametrize("algorithm", ["sft", "kto"])
def test_resume_is_bitwise_equal_to_an_uninterrupted_run(
    algorithm: str, tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe(algorithm, **FULL_SFT)
    make_run(recipe, tmp_path / "straight").train()

    interrupted = _interrupted_run(recipe, tmp_path / "resumed", step=2)
    assert interrupted.exit_code == 143
    assert interrupted.checkpoint == "checkpoints/checkpoint-2"
    assert not (tmp_path / "resumed" / "final").exists()
    status = json.loads((tmp_path / "resumed" / "status.json").read_text())
    assert status["status"] == "interrupted"

    make_run(recipe, tmp_path / "resumed").train()
    start = [e for e in read_events(tmp_path / "resumed") if e["event"] == "start"][-1]
    assert start["resumed_from"] == "checkpoint-2"
    a = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)


def test_a_run_stopped_at_its_last_step_resumes_without_training_past_it(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    # 6 steps of 4 per epoch: the last checkpoint is mid-epoch; a constant rate moves every step.
    training = {"max_steps": 6, "save_steps": 3, "batch_size": 8, "lr_scheduler": "constant"}
    recipe = tiny_recipe("sft", training=training)
    straight = make_run(recipe, tmp_path / "straight").train()
    interrupted = _interrupted_run(recipe, tmp_path / "resumed", step=6)
    assert interrupted.checkpoint == "checkpoints/checkpoint-6"

    metrics = make_run(recipe, tmp_path / "resumed").train()
    assert metrics["global_step"] == 6
    assert metrics["loss"] == straight["loss"]  # the last step's, logged before the stop
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-3",
        "checkpoint-6",
    ]
    a = load_file(tmp_path / "straight" / "final" / "adapter_model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_train_again_on_the_same_trainer_resumes_like_a_new_process(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    """A notebook: Ctrl-C stops train(), and train() on the same object goes on."""
    recipe = tiny_recipe("sft", training={"max_steps": 6, "save_steps": 3, "batch_size": 8})
    make_run(recipe, tmp_path / "straight").train()
    run = make_run(recipe, tmp_path / "resumed")
    run.trainer.callback_handler.callbacks.insert(0, SignalAtStep(2, signal.SIGINT))
    with pytest.raises(RunInterrupted):
        run.train()

    with warnings.catch_warnings():  # peft's warnings when a second adapter is stacked
        warnings.filterwarnings("error", message=".*modify a model with PEFT for a second time")
        warnings.filterwarnings("error", message="Already found a `peft_config` attribute")
        metrics = run.train()
    assert metrics["status"] == "finished" and metrics["global_step"] == 6
    start = [e for e in read_events(tmp_path / "resumed") if e["event"] == "start"][-1]
    assert start["resumed_from"] == "checkpoint-2"
    a = load_file(tmp_path / "straight" / "final" / "adapter_model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_half_written_checkpoint_is_skipped(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", **FULL_SFT)
    run_dir = tmp_path / "run"
    _interrupted_run(recipe, run_dir, step=3)
    good = run_dir / "checkpoints" / "checkpoint-3"
    assert good.is_dir()
    # What a kill in the middle of an in-place save leaves: a newer folder without its marker.
    half = run_dir / "checkpoints" / "checkpoint-5"
    half.mkdir()
    (half / "trainer_state.json").write_text("{")
    make_run(recipe, run_dir).train()
    start = [e for e in read_events(run_dir) if e["event"] == "start"][-1]
    assert start["resumed_from"] == "checkpoint-3"
    assert start["skipped_checkpoints"][0]["path"] == "checkpoint-5"
    assert "did not finish" in start["skipped_checkpoints"][0]["reason"]
    assert (run_dir / "final" / "model.safetensors").is_file()


def test_changed_recipe_is_refused_unless_restart(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", **FULL_SFT)
    run_dir = tmp_path / "run"
    _interrupted_run(recipe, run_dir, step=3)
    lower_rate = {**FULL_SFT["training"], "learning_rate": 5e-4}
    changed = tiny_recipe("sft", **{**FULL_SFT, "training": lower_rate})
    with pytest.raises(ResumeRefused) as refused:
        make_run(changed, run_dir).train()
    assert refused.value.lines[1:] == ["  training.learning_rate: was 0.001, now 0.0005"]
    assert (run_dir / "checkpoints" / "checkpoint-3").is_dir()
    make_run(changed, run_dir, mode="restart").train()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"


LORA_SFT = {"training": {"max_steps": 4, "save_steps": 2}}


def test_a_run_copied_elsewhere_with_its_inputs_resumes_there(
    tiny_recipe: Callable[..., Path], tiny_dir: Path, tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", **LORA_SFT)
    _interrupted_run(recipe, tmp_path / "run", step=2)
    # Another machine: the recipe, model, data and run directory all under another path.
    moved = shutil.copytree(tiny_dir, tmp_path / "elsewhere" / "tiny")
    shutil.copytree(tmp_path / "run", tmp_path / "elsewhere" / "run")
    run_dir = tmp_path / "elsewhere" / "run"

    make_run(moved / "sft.yaml", run_dir).train()
    start = [e for e in read_events(run_dir) if e["event"] == "start"][-1]
    assert start["resumed_from"] == "checkpoint-2"
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    adapter = json.loads((run_dir / "final" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(moved / "model")


def test_data_edited_between_attempts_is_refused_naming_the_field(
    tiny_recipe: Callable[..., Path], tiny_dir: Path, tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", **LORA_SFT)
    run_dir = tmp_path / "run"
    _interrupted_run(recipe, run_dir, step=2)
    data = tiny_dir / "data" / "sft.jsonl"
    data.write_text("".join(data.read_text().splitlines(keepends=True)[:16]))
    before = tree_snapshot(run_dir)

    with pytest.raises(ResumeRefused) as refused:
        make_run(recipe, run_dir).train()
    assert refused.value.lines[1:] == [
        f"  data.train.path: {data} holds other content than when the run began"
    ]
    assert tree_snapshot(run_dir) == before


def test_logging_and_checkpoint_settings_may_change_on_resume(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", **LORA_SFT)
    run_dir = tmp_path / "run"
    _interrupted_run(recipe, run_dir, step=2)
    cadence = {"logging_steps": 2, "save_steps": 1, "save_total_limit": 1}
    changed = tiny_recipe("sft", training={**LORA_SFT["training"], **cadence})

    make_run(changed, run_dir).train()
    start = [e for e in read_events(run_dir) if e["event"] == "start"][-1]
    assert start["resumed_from"] == "checkpoint-2"
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-4"
    ]


@pytest.mark.parametrize("how", ["OSError", "torch"])
def test_a_full_disk_while_saving_a_checkpoint_is_one_error_and_the_run_resumes(
    how: str, tiny_recipe: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No small mount is available here: torch.save fails at step 4 as it does on a full disk,
    after writing part of the file (as OSError ENOSPC, or torch's own zip writer error while
    the disk reports no free space)."""
    import torch

    real_save = torch.save

    def full_disk(obj: object, f: object, *args: object, **kwargs: object) -> None:
        if "checkpoint-4" not in str(f):
            return real_save(obj, f, *args, **kwargs)
        Path(str(f)).write_bytes(b"PK" * 1000)
        if how == "OSError":
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 0))
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 36416")

    monkeypatch.setattr(torch, "save", full_disk)
    recipe = tiny_recipe("sft", **LORA_SFT)
    run_dir = tmp_path / "run"
    with pytest.raises(RunDirectoryError) as full:
        make_run(recipe, run_dir).train()
    message = f"cannot write {run_dir}/checkpoints/checkpoint-4: No space left on device"
    assert str(full.value) == message
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and message in status["error"]
    assert not (run_dir / "checkpoints" / ".staging").exists()  # the half-written save is gone
    monkeypatch.undo()

    make_run(recipe, run_dir).train()
    start = [e for e in read_events(run_dir) if e["event"] == "start"][-1]
    assert start["resumed_from"] == "checkpoint-2"
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"


def test_a_full_disk_while_writing_final_names_it_and_the_run_resumes_to_publish_it(
    tiny_recipe: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer's save of final/ fails as it does on a full disk, after writing part of it."""
    from transformers import Trainer

    real_save = Trainer.save_model

    def full_disk(self: Any, output_dir: str | None = None, **kwargs: Any) -> None:
        if not str(output_dir).endswith(".final.tmp"):  # checkpoints are saved the same way
            return real_save(self, output_dir, **kwargs)
        Path(str(output_dir)).mkdir(parents=True, exist_ok=True)
        (Path(str(output_dir)) / "adapter_model.safetensors").write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    recipe = tiny_recipe("sft", **LORA_SFT)
    run_dir = tmp_path / "run"
    run = make_run(recipe, run_dir)
    monkeypatch.setattr(Trainer, "save_model", full_disk)
    with pytest.raises(RunDirectoryError) as full:
        run.train()
    assert str(full.value) == f"cannot write {run_dir}/final: No space left on device"
    assert not (run_dir / ".final.tmp").exists() and not (run_dir / "final").exists()
    monkeypatch.undo()

    make_run(recipe, run_dir).train()  # resumes at the last checkpoint, trains nothing more
    start = [e for e in read_events(run_dir) if e["event"] == "start"][-1]
    assert start["resumed_from"] == "checkpoint-4"
    assert (run_dir / "final" / "adapter_model.safetensors").stat().st_size > 1000


def test_sigterm_saves_a_checkpoint_and_exits_143(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", training={"max_steps": 100000, "save_steps": 100000})
    run_dir = tmp_path / "run"
    env = dict(os.environ, TRL_EXPERIMENTAL_SILENCE="1")
    command = [sys.executable, "-m", "aligntune.runners.trl", "run", str(recipe)]
    process = subprocess.Popen(
        [*command, "--output", str(run_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        events = run_dir / "events.jsonl"
        if events.is_file() and '"event": "log"' in events.read_text():
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted"
    latest = (run_dir / "checkpoints" / "LATEST").read_text().strip()
    assert (run_dir / "checkpoints" / latest / "aligntune_checkpoint.json").is_file()
    assert not (run_dir / "final").exists()
    assert read_events(run_dir)[-1]["status"] == "interrupted"


def test_non_finite_loss_stops_with_last_checkpoint_intact(
    tiny_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = tiny_recipe("sft", **FULL_SFT)
    data = yaml.safe_load(recipe.read_text())
    data["training"].update(max_steps=8, save_steps=2)
    recipe.write_text(yaml.safe_dump(data))

    class PoisonAfter(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 3:
                for param in model.parameters():
                    param.data.fill_(float("nan"))

    run = make_run(recipe, tmp_path / "run")
    run.trainer.callback_handler.callbacks.insert(0, PoisonAfter())
    with pytest.raises(TrainingDivergedError, match="checkpoint-2"):
        run.train()
    assert (
        tmp_path / "run" / "checkpoints" / "checkpoint-2" / "aligntune_checkpoint.json"
    ).is_file()
    assert not (tmp_path / "run" / "checkpoints" / "checkpoint-4").exists()
    assert not (tmp_path / "run" / "final").exists()
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "failed"
