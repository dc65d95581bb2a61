"""The Unsloth runner's trainer object: what `create_trainer` returns and the CLI drives.

The run-directory lifecycle is the TRL runner's (same files, events, exit codes); what differs is
the model (FastLanguageModel with its own LoRA) and a read-back check that Unsloth's patched
configs kept every setting we resolved.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# isort: off
from aligntune.runners.unsloth import stack  # Unsloth before trl/transformers/peft

# isort: on
from aligntune.core.algorithms import get_algorithm
from aligntune.core.data import is_local_path, resolve_local
from aligntune.core.errors import BackendUnavailableError, UserInputError
from aligntune.core.preflight import check_inputs
from aligntune.core.recipe import Recipe
from aligntune.core.rewards import check_reward_signature, load_reward
from aligntune.core.rundir import RunDirectory
from aligntune.core.selection import Plan
from aligntune.runners.unsloth import checkpoints, lifecycle
from aligntune.runners.unsloth.builders import BUILDERS, Pieces, train_reward_model
from aligntune.runners.unsloth.callbacks import RunDirectoryCallback
from aligntune.runners.unsloth.data import load_data
from aligntune.runners.unsloth.errors import (
    RunInterrupted,
    SettingsRewritten,
    TrainingDivergedError,
)
from aligntune.runners.unsloth.manifest import build_manifest
from aligntune.runners.unsloth.models import (
    from_pretrained_kwargs,
    load_policy,
    model_reference,
    peft_kwargs,
)
from aligntune.runners.unsloth.settings import resolve_settings
from aligntune.runners.unsloth.signals import InterruptRequest


def default_run_dir(recipe: Recipe) -> Path:
    """The recipe's output.dir, else runs/<run name>, relative to the current directory."""
    return Path(recipe.output.dir or f"runs/{recipe.run_name}").resolve()


def _absolute(reference: str, base_dir: Path) -> str:
    path = resolve_local(reference, base_dir)
    return str(path) if is_local_path(reference) or path.exists() else reference


def resolved_recipe(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data with every default, local paths made absolute."""
    data = recipe.to_yaml_dict()
    base = recipe.base_dir
    data["model"]["name_or_path"] = _absolute(recipe.model.name_or_path, base)
    for key in ("train", "eval"):
        if data["data"].get(key):
            data["data"][key]["path"] = _absolute(data["data"][key]["path"], base)
    algorithm = data["algorithm"]
    for key in ("reward_model", "value_model"):
        if algorithm.get(key):
            algorithm[key] = _absolute(algorithm[key], base)
    if algorithm.get("train_reward_model"):
        source = algorithm["train_reward_model"]["data"]
        source["path"] = _absolute(source["path"], base)
    return data


def load_rewards(
    recipe: Recipe, given: Mapping[str, Callable[..., Any]] | None
) -> list[Callable[..., Any]]:
    """Every reward function, imported and signature-checked before anything trains."""
    functions = []
    for index, spec in enumerate(recipe.rewards):
        where = f"rewards[{index}]"
        try:
            if given and spec.function in given:
                function = given[spec.function]
                check_reward_signature(function, spec.function)
            else:
                function = load_reward(spec.function, spec.params, recipe.base_dir)
        except UserInputError as exc:
            raise UserInputError(f"{where}: {exc}") from None
        functions.append(function)
    return functions


def _ppo_models(recipe: Recipe, run_dir: Path) -> tuple[str | None, str | None]:
    algorithm = recipe.algorithm
    if algorithm.name != "ppo":
        return None, None
    reward = getattr(algorithm, "reward_model", None)
    reward_ref = (
        model_reference(reward, recipe.base_dir) if reward else str(run_dir / "reward_model")
    )
    value = getattr(algorithm, "value_model", None)
    return reward_ref, model_reference(value, recipe.base_dir) if value else reward_ref


class UnslothRun:
    """One recipe's training run with Unsloth: train, evaluate, save and predict."""

    def __init__(
        self,
        recipe: Recipe,
        plan: Plan,
        reward_callables: Mapping[str, Callable[..., Any]] | None = None,
        run_dir: str | Path | None = None,
        mode: lifecycle.Mode = "auto",
    ) -> None:
        self.recipe = recipe
        self.plan = plan
        self.mode = mode
        self.run_dir = RunDirectory(Path(run_dir).resolve() if run_dir else default_run_dir(recipe))
        self.interrupt = InterruptRequest()
        self.pieces = self._load(reward_callables)
        self._trainer: Any = None
        self._callback: RunDirectoryCallback | None = None

    def _load(self, reward_callables: Mapping[str, Callable[..., Any]] | None) -> Pieces:
        """Check and load everything (inputs, rewards, model, data); writes nothing."""
        recipe, plan = self.recipe, self.plan
        check_inputs(recipe)
        check_device(plan)
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
        model, tokenizer = load_policy(
            recipe, reference, settings.model_init, settings.peft, plan.device
        )
        self.unsloth_settings = unsloth_settings(recipe, reference, settings, plan.device)
        data = load_data(recipe, chat_template=bool(tokenizer.chat_template))
        return Pieces(
            recipe, settings, plan.device, tokenizer, model, data.train, data.eval, rewards
        )

    @property
    def settings(self) -> dict[str, Any]:
        """The resolved trainer settings (what trainer_settings.json holds)."""
        return {**self.pieces.settings.to_json(), "unsloth": self.unsloth_settings}

    @property
    def trainer(self) -> Any:
        """The underlying TRL trainer (built on first use)."""
        if self._trainer is None:
            self._build([])
        return self._trainer

    def _build(self, skipped: list[dict[str, str]], resume_from: Path | None = None) -> None:
        family = get_algorithm(self.recipe.algorithm.name).family
        if family == "online_rl" and getattr(self.recipe.algorithm, "train_reward_model", None):
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
            self.recipe.algorithm.name,
            self.interrupt,
            keep=self.recipe.training.save_total_limit,
            start_fields={
                "algorithm": self.recipe.algorithm.name,
                "backend": "unsloth",
                "resumed_from": resume_from.name if resume_from else None,
                "skipped_checkpoints": skipped,
            },
        )
        self._callback.last_checkpoint = resume_from
        self._trainer = BUILDERS[family](self.pieces, [self._callback])
        check_kept(self.pieces.settings.config_kwargs, self._trainer.args)

    def train(self) -> dict[str, Any]:
        """Train (resuming this run directory's newest complete checkpoint); return metrics."""
        resolved = resolved_recipe(self.recipe)
        can_resume = self.recipe.algorithm.name != "ppo"
        attempt = lifecycle.inspect(self.run_dir, resolved, "unsloth", self.mode, can_resume)
        if attempt.finished:
            status = self.run_dir.read_status() or {}
            return dict(status.get("metrics") or {}, status="finished")
        manifest = build_manifest(self.recipe, resolved, "unsloth")
        lifecycle.write_start(self.run_dir, self.plan, resolved, manifest, self.settings, attempt)
        checkpoints.clear_staging(self.run_dir.checkpoints)
        skipped = [{"path": s.path.name, "reason": s.reason} for s in attempt.skipped]
        try:
            if self._trainer is None or attempt.resume_from is not None:
                self._build(skipped, attempt.resume_from)
            with self.interrupt.handling_signals():
                if attempt.resume_from is None:
                    # PPOTrainer.train() takes no resume argument at all.
                    self._trainer.train()
                else:
                    self._trainer.train(resume_from_checkpoint=str(attempt.resume_from))
        except RunInterrupted as exc:
            self._record_end("interrupted", checkpoint=exc.checkpoint, signal=exc.signum)
            raise
        except TrainingDivergedError as exc:
            self._record_end("failed", error=str(exc))
            raise
        except BaseException as exc:
            self._record_end("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        return self._finish()

    def _finish(self) -> dict[str, Any]:
        assert self._callback is not None
        metrics = {**self._callback.last_logs, **self._callback.summary}
        metrics["global_step"] = self._trainer.state.global_step
        final = None
        if self.recipe.output.save_final:
            final = lifecycle.publish_final(self.run_dir, self._trainer, self.pieces.tokenizer)
        self._record_end("finished", metrics=metrics, final=str(final) if final else None)
        return dict(metrics, status="finished")

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
        """Save the model (or LoRA adapter) and tokenizer to `path`."""
        target = Path(path)
        lifecycle.save_model(self.trainer, self.pieces.tokenizer, target)
        return target

    def predict(self, prompts: list[Any], max_new_tokens: int = 64) -> list[str]:
        """Greedy completions for prompts (strings become user turns when there is a template)."""
        from aligntune.runners.unsloth.generate import generate

        model = self._trainer.model if self._trainer is not None else self.pieces.model
        return generate(model, self.pieces.tokenizer, prompts, max_new_tokens)


def _bf16_supported(device: str) -> bool:
    import torch

    return device == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def check_device(plan: Plan) -> None:
    """A CUDA plan needs a GPU here; a CPU plan runs in Unsloth's CPU mode, with a warning."""
    if plan.device == "cuda" and not stack.cuda_available():
        raise BackendUnavailableError(
            "the plan says cuda, but torch sees no CUDA GPU in this process",
            hint="check the container's --gpus flag and the NVIDIA driver (aligntune diagnose)",
        )
    if plan.device == "cpu":
        print(
            f"aligntune: warning: no CUDA GPU: Unsloth {stack.UNSLOTH_VERSION} trains in its CPU "
            "mode (LoRA only, far slower than on a GPU)",
            file=sys.stderr,
        )
    if stack.IMPORTED_TOO_LATE:
        print(
            f"aligntune: warning: {', '.join(stack.IMPORTED_TOO_LATE)} imported before unsloth; "
            "Unsloth's patches may be incomplete",
            file=sys.stderr,
        )


def unsloth_settings(recipe: Recipe, reference: str, settings: Any, device: str) -> dict[str, Any]:
    """What trainer_settings.json adds for Unsloth: its version and how the model was loaded."""
    loading = from_pretrained_kwargs(recipe, reference, settings.model_init, device)
    loading["dtype"] = settings.model_init["dtype"]
    return {
        "version": stack.UNSLOTH_VERSION,
        "device": device,
        "from_pretrained": loading,
        "get_peft_model": peft_kwargs(recipe, settings.peft) if settings.peft else None,
    }


def check_kept(config_kwargs: dict[str, Any], args: Any) -> None:
    """Fail if Unsloth's patched config changed a setting we set (it rewrites GRPO defaults)."""
    changed = [
        f"{name}: {value!r} -> {getattr(args, name)!r}"
        for name, value in config_kwargs.items()
        if name in KEPT_SETTINGS and hasattr(args, name) and _differs(getattr(args, name), value)
    ]
    if changed:
        raise SettingsRewritten(
            "Unsloth's patched trainer config changed resolved settings: " + "; ".join(changed)
        )


def _differs(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, float) and isinstance(actual, int | float):
        return abs(actual - wanted) > 1e-12
    if isinstance(wanted, list | tuple) and isinstance(actual, list | tuple):
        return list(actual) != list(wanted)
    return actual != wanted


KEPT_SETTINGS = frozenset(
    {
        "loss_type", "beta", "epsilon", "epsilon_high", "scale_rewards",
        "importance_sampling_level", "mask_truncated_completions", "num_generations",
        "max_completion_length", "temperature", "top_p", "num_iterations", "reward_weights",
        "label_smoothing", "learning_rate", "per_device_train_batch_size",
        "gradient_accumulation_steps", "max_steps", "seed", "max_length",
    }
)  # fmt: skip
"""Settings that change what is optimised; Unsloth must leave each as resolved."""


def create_trainer(
    recipe: Recipe,
    plan: Plan,
    reward_callables: Mapping[str, Callable[..., Any]] | None = None,
    run_dir: str | Path | None = None,
    mode: lifecycle.Mode = "auto",
) -> UnslothRun:
    """An UnslothRun for a validated recipe and plan (what aligntune.core.backend_factory calls)."""
    algorithm = get_algorithm(recipe.algorithm.name)
    if "unsloth" not in algorithm.backends:
        raise BackendUnavailableError(
            f"backend unsloth does not support {algorithm.name}; the TRL backend does",
            hint="set backend: trl (or auto) in the recipe",
        )
    if plan.backend != "unsloth":
        raise UserInputError(f"the Unsloth runner got a plan for backend {plan.backend!r}")
    return UnslothRun(recipe, plan, reward_callables, run_dir, mode)
