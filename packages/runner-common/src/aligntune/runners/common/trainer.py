"""The shared run object: what each runner's `create_trainer` returns and its CLI drives.

Import only after the backend's `import_stack()` (Unsloth must patch trl/transformers first).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from aligntune.core.algorithm_sections import PPOAlgorithm
from aligntune.core.algorithms import get_algorithm
from aligntune.core.data_check import DataSummary, sample_rows
from aligntune.core.errors import DataError, UserInputError
from aligntune.core.paths import renamed_paths, resolved_recipe
from aligntune.core.plan import Plan
from aligntune.core.preflight import check_inputs
from aligntune.core.recipe import Recipe
from aligntune.core.resume_rules import input_digests
from aligntune.core.reward_checks import check_reward_call
from aligntune.core.rewards import check_reward_signature, load_reward
from aligntune.core.rundir import RunDirectory
from aligntune.runners.common import checkpoints, distributed, lifecycle, portable
from aligntune.runners.common.backend import Backend, check_plan
from aligntune.runners.common.builders import BUILDERS, Pieces, train_reward_model
from aligntune.runners.common.callbacks import RunDirectoryCallback, TrainedToTheEnd
from aligntune.runners.common.data import load_data
from aligntune.runners.common.errors import RunInterrupted, TrainingDivergedError
from aligntune.runners.common.manifest import build_manifest
from aligntune.runners.common.models import model_reference
from aligntune.runners.common.samples import Stage, answer_samples, report_quietly
from aligntune.runners.common.settings import resolve_settings
from aligntune.runners.common.signals import InterruptRequest
from aligntune.runners.common.trackers import point_trackers_at


def load_rewards(
    recipe: Recipe, given: Mapping[str, Callable[..., Any]] | None
) -> list[Callable[..., Any]]:
    """Every reward function, imported, signature-checked and called on the data's first rows
    (in this environment, before anything is written)."""
    rows = sample_rows(recipe.data.train_sources()[0][1], recipe.base_dir)
    functions = []
    for index, spec in enumerate(recipe.rewards):
        where = f"rewards[{index}]"
        try:
            if given and spec.function in given:
                function = given[spec.function]
                check_reward_signature(function, spec.function)
            else:
                function = load_reward(spec.function, spec.params, recipe.base_dir)
            check_reward_call(function, rows, spec.function)
        except UserInputError as exc:
            raise UserInputError(f"{where}: {exc}", hint=exc.hint) from None
        functions.append(function)
    return functions


def _ppo_models(recipe: Recipe, run_dir: Path) -> tuple[str | None, str | None]:
    algorithm = recipe.algorithm
    if not isinstance(algorithm, PPOAlgorithm):
        return None, None
    reward = algorithm.reward_model
    reward_ref = (
        model_reference(reward, recipe.base_dir) if reward else str(run_dir / "reward_model")
    )
    value = algorithm.value_model
    return reward_ref, model_reference(value, recipe.base_dir) if value else reward_ref


def _check_rows_left(trainer: Any, rows: int, max_length: int) -> None:
    """TRL's DPO trainer drops each pair whose prompt alone fills max_length (with nothing left,
    training crashed on an empty sampler); a run that would train on no row is refused."""
    data = getattr(trainer, "train_dataset", None)
    if rows and data is not None and hasattr(data, "__len__") and len(data) == 0:
        raise DataError(
            f"data.train: every one of the {rows} rows' prompts fills data.max_length "
            f"({max_length} tokens), so the trainer drops them all and has nothing to train on",
            hint="raise data.max_length, or shorten the prompts",
        )


class Run:
    """One recipe's training run on one backend: train, evaluate, save and predict."""

    def __init__(
        self,
        backend: Backend,
        recipe: Recipe,
        plan: Plan,
        reward_callables: Mapping[str, Callable[..., Any]] | None = None,
        run_dir: str | Path | None = None,
        mode: lifecycle.Mode = "auto",
        checked: Mapping[str, DataSummary] | None = None,
    ) -> None:
        """`checked`: by field, data files the launcher checked that are unchanged since."""
        self.started = time.time()
        self.backend = backend
        self.recipe = recipe
        self.plan = plan
        self.mode = mode
        self.checked = checked
        root = recipe.run_dir(run_dir)
        self.run_dir = distributed.for_this_rank(RunDirectory(root))
        self.interrupt = InterruptRequest()
        self.pieces = self._load(reward_callables)
        self._trainer: Any = None
        self._callback: RunDirectoryCallback | None = None

    def _load(self, reward_callables: Mapping[str, Callable[..., Any]] | None) -> Pieces:
        """Check and load everything (inputs, rewards, model, data); writes nothing."""
        recipe, plan, backend = self.recipe, self.plan, self.backend
        check_inputs(recipe, self.checked)
        if backend.check_device is not None:
            backend.check_device(plan)
        reference = model_reference(recipe.model.name_or_path, recipe.base_dir)
        rewards = load_rewards(recipe, reward_callables)
        reward_ref, value_ref = _ppo_models(recipe, self.run_dir.root)
        settings = resolve_settings(
            recipe,
            plan,
            str(checkpoints.staging_dir(self.run_dir.checkpoints)),
            bf16_supported=_bf16_supported(plan.device),
            reward_model=reward_ref,
            value_model=value_ref,
        )
        model, tokenizer = backend.load_policy(recipe, reference, settings, plan.device)
        self.extra_settings = (
            backend.extra_settings(recipe, reference, settings, plan.device)
            if backend.extra_settings is not None
            else None
        )
        # Data after the model: its tokenizer says whether rows become chat turns.
        data = load_data(recipe, tokenizer)
        return Pieces(
            recipe,
            settings,
            plan.device,
            tokenizer,
            model,
            data.train,
            data.eval,
            rewards,
            peft_in_trainer=backend.trainer_gets_peft_config,
            examples=data.examples,
        )

    @property
    def settings(self) -> dict[str, Any]:
        """The resolved trainer settings (what trainer_settings.json holds)."""
        settings = self.pieces.settings.to_json()
        if self.extra_settings is not None:
            settings[self.backend.name] = self.extra_settings
        return settings

    @property
    def trainer(self) -> Any:
        """The underlying TRL trainer (built on first use)."""
        if self._trainer is None:
            self._build([])
        return self._trainer

    def _build(self, skipped: list[dict[str, str]], resume_from: Path | None = None) -> None:
        # Built before train() (the `trainer` property), the trainer and PPO's reward model write
        # into the run directory: it must be usable and marked as aligntune's first.
        distributed.on_rank_zero(lambda: lifecycle.claim_directory(self.run_dir, self.mode))
        if self._trainer is not None:
            # Built again in this process (train() after an interruption): the first trainer
            # trained the loaded model in place, and peft put its adapter into it; wrapping it
            # again would stack a second adapter. Start from the model as a new process would.
            reference = model_reference(self.recipe.model.name_or_path, self.recipe.base_dir)
            model, _ = self.backend.load_policy(
                self.recipe, reference, self.pieces.settings, self.plan.device
            )
            self.pieces = replace(self.pieces, model=model)
        algorithm = self.recipe.algorithm
        if isinstance(algorithm, PPOAlgorithm) and algorithm.train_reward_model is not None:
            target = Path(self.pieces.settings.models["reward_model"])
            train_reward_model(
                self.recipe,
                self.pieces.tokenizer,
                self.pieces.settings.model_init,
                self.plan.device,
                target,
            )
        self._callback = RunDirectoryCallback(
            self.run_dir,
            self.recipe.algorithm,
            self.interrupt,
            keep=self.recipe.training.save_total_limit,
            renames=renamed_paths(self.recipe, self.run_dir.root),
            start_fields={
                "algorithm": self.recipe.algorithm.name,
                "backend": self.backend.name,
                "resumed_from": resume_from.name if resume_from else None,
                "skipped_checkpoints": skipped,
                "runner_started": round(self.started, 3),
            },
        )
        self._callback.last_checkpoint = resume_from
        point_trackers_at(self.run_dir.root, self.recipe.training.report_to)
        self._trainer = BUILDERS[type(algorithm)](self.pieces, [self._callback])
        _check_rows_left(self._trainer, len(self.pieces.train), self.recipe.data.max_length)
        if self.backend.check_built is not None:
            self.backend.check_built(self.pieces.settings, self._trainer.args)

    def train(self) -> dict[str, Any]:
        """Train (resuming this run directory's newest complete checkpoint); return metrics."""
        self.interrupt.clear()  # a stop asked of an earlier train() call is not this one's
        resolved = resolved_recipe(self.recipe, self.run_dir.root).to_yaml_dict()
        can_resume = get_algorithm(self.recipe.algorithm.name).resumable
        name = self.backend.name
        # The manifest and the trainer's settings name inputs and run directory as the user does.
        renames = renamed_paths(self.recipe, self.run_dir.root)
        inputs = input_digests(self.recipe)  # each local input read once, for both uses below
        # Rank 0 decides how this attempt starts (and clears a restart); every rank follows.
        attempt = distributed.on_rank_zero(
            lambda: lifecycle.inspect(self.run_dir, resolved, name, self.mode, can_resume, inputs)
        )
        if attempt.finished:
            status = self.run_dir.read_status() or {}
            return dict(status.get("metrics") or {}, status="finished")
        packages = self.backend.manifest_packages
        manifest = build_manifest(self.recipe, resolved, name, inputs, packages)
        manifest = portable.renamed_json(manifest, renames)
        settings = portable.renamed_json(self.settings, renames)
        lifecycle.write_start(self.run_dir, self.plan, resolved, manifest, settings, attempt)
        checkpoints.clear_staging(self.run_dir.checkpoints)
        skipped = [{"path": s.path.name, "reason": s.reason} for s in attempt.skipped]
        try:
            if self._trainer is None or attempt.resume_from is not None:
                self._build(skipped, attempt.resume_from)
            if attempt.resume_from is None:
                self._samples("base")
            with self.interrupt.handling_signals(), self.run_dir.holding_events():
                if attempt.resume_from is None:
                    self._trainer.train()
                else:
                    # PPOTrainer.train() takes no resume argument at all (can_resume is False).
                    # TrainedToTheEnd: nothing left to train; the checkpoint's weights are loaded.
                    with contextlib.suppress(TrainedToTheEnd):
                        self._trainer.train(resume_from_checkpoint=str(attempt.resume_from))
                self._evaluate_at_end()
        except RunInterrupted as exc:
            self._record_end("interrupted", checkpoint=exc.checkpoint, signal=exc.signum)
            self._report()
            raise
        except TrainingDivergedError as exc:
            self._record_end("failed", error=str(exc), **exc.status_fields)
            self._report()
            raise
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the failure to record is `exc`
                self._checkpoints_published()
            error = checkpoints.abandon_save(self.run_dir.checkpoints, exc)
            self._record_end("failed", error=f"{type(error).__name__}: {error}")
            self._report()
            if error is exc:
                raise
            raise error from exc
        result = self._finish()
        self._samples("trained")
        self._report()
        return result

    def _evaluate_at_end(self) -> None:
        """Evaluate the trained model on the eval split once training ends: with eval_steps the
        trainer already did (transformers evaluates the last step too)."""
        if self.pieces.eval is None or not get_algorithm(self.recipe.algorithm.name).evaluates:
            return
        if self._trainer.args.eval_strategy == "no":
            self._trainer.evaluate()

    def _samples(self, stage: Stage) -> None:
        """Answer the sample prompts with the model as it is now (samples.py)."""
        trainer = self._trainer
        # PPOTrainer.model wraps the policy with the value model; the policy alone generates.
        model = getattr(trainer, "policy_model", trainer.model) if trainer else self.pieces.model
        step = trainer.state.global_step if trainer is not None and stage == "trained" else 0
        answer_samples(self.recipe, self.run_dir, stage, model, self.pieces, step)

    def _report(self) -> None:
        """Rank 0 writes the run report; a failure is a warning."""
        if distributed.is_rank_zero():
            report_quietly(self.run_dir, self.recipe)

    def _finish(self) -> dict[str, Any]:
        assert self._callback is not None
        metrics = {**self._callback.last_logs, **self._callback.summary}
        metrics["global_step"] = self._trainer.state.global_step
        final = None
        if self.recipe.output.save_final:
            trainer, tokenizer = self._trainer, self.pieces.tokenizer
            final = lifecycle.publish_final(self.run_dir, trainer, tokenizer, self.recipe)
        # The last step's checkpoint was made durable in the background while final/ was written.
        self._checkpoints_published()
        self._record_end("finished", metrics=metrics, final="final" if final else None)
        return dict(metrics, status="finished")

    def _checkpoints_published(self) -> None:
        """Wait for the checkpoint still being published, if any (see RunDirectoryCallback)."""
        if self._callback is not None:
            self._callback.announce_published()

    def _record_end(self, status: str, **fields: Any) -> None:
        self.run_dir.append_event("end", status=status, **fields)
        step = self._trainer.state.global_step if self._trainer is not None else 0
        self.run_dir.set_status(status, step=step, **fields)  # type: ignore[arg-type]

    def evaluate(self) -> dict[str, Any]:
        """Evaluate on the recipe's eval data (data.eval or data.eval_fraction)."""
        if self.pieces.eval is None:
            raise UserInputError(
                "evaluate(): the recipe has no eval data; set data.eval or data.eval_fraction"
            )
        return dict(self.trainer.evaluate())

    def save_model(self, path: str | Path) -> Path:
        """Save the model (or LoRA adapter), tokenizer and generation config to `path`."""
        target = Path(path)
        tokenizer = self.pieces.tokenizer
        lifecycle.save_model(self.trainer, tokenizer, target, self.recipe, self.run_dir.root)
        return target

    def predict(self, prompts: list[Any], max_new_tokens: int = 64) -> list[str]:
        """Greedy completions for prompts (strings become user turns when there is a template)."""
        from aligntune.runners.common.generate import generate

        model = self._trainer.model if self._trainer is not None else self.pieces.model
        return generate(model, self.pieces.tokenizer, prompts, max_new_tokens)


def _bf16_supported(device: str) -> bool:
    import torch

    return device == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def create_run(
    backend: Backend,
    recipe: Recipe,
    plan: Plan,
    reward_callables: Mapping[str, Callable[..., Any]] | None = None,
    run_dir: str | Path | None = None,
    mode: lifecycle.Mode = "auto",
) -> Run:
    """A run on `backend` for a validated recipe and plan: each runner's `create_trainer`."""
    check_plan(backend, recipe, plan)
    return Run(backend, recipe, plan, reward_callables, run_dir, mode)
