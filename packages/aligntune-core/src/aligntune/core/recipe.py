"""The recipe: one YAML file that says what to train, on what data, with which algorithm.

`Recipe` puts the sections together (`aligntune.core.sections`, and the algorithm's own in
`aligntune.core.algorithm_sections`) and holds the rules that span sections.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, model_validator

from aligntune.core import paths
from aligntune.core.algorithm_sections import AlgorithmSection, GroupRLAlgorithm, KTOAlgorithm
from aligntune.core.algorithms import get_algorithm
from aligntune.core.backends import BackendChoice
from aligntune.core.data import real_path
from aligntune.core.sections import (
    DataSettings,
    DistributedSettings,
    ModelSettings,
    OutputSettings,
    RewardSpec,
    SampleSettings,
    Section,
    TrainingSettings,
)

MAX_NAME = 100
"""The longest run name (it names the run directory and the container)."""


class Recipe(Section):
    """A complete aligntune training recipe."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=MAX_NAME)
    """Run name (default: the recipe file's name)."""
    algorithm: AlgorithmSection
    """The training algorithm and its own settings, chosen by `name`."""
    backend: BackendChoice = "auto"
    """Training backend; `auto` picks Unsloth only where it can run, else TRL."""
    model: ModelSettings
    """The model to train."""
    data: DataSettings
    """Training and evaluation data."""
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    """Optimisation, schedule and bookkeeping."""
    # pydantic copies a default per instance; ruff cannot see that Section is a pydantic model.
    rewards: list[RewardSpec] = []  # noqa: RUF012
    """Reward functions (GRPO, GSPO, DAPO, Dr. GRPO)."""
    samples: SampleSettings = Field(default_factory=SampleSettings)
    """Sample generations before and after training, for the run report."""
    distributed: DistributedSettings = Field(default_factory=DistributedSettings)
    """Multi-process and multi-node training."""
    output: OutputSettings = Field(default_factory=OutputSettings)
    """Where results go."""

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _host_paths: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def check_rewards_match_algorithm(self) -> Recipe:
        """GRPO-family algorithms need rewards; the others must not silently ignore them."""
        algorithm = get_algorithm(self.algorithm.name)
        if algorithm.needs_rewards and not self.rewards:
            raise ValueError(
                f"rewards: {algorithm.name} needs at least one reward function, e.g. "
                "rewards: [{function: exact_match, params: {column: answer}}]"
            )
        if self.rewards and not algorithm.needs_rewards:
            raise ValueError(
                f"rewards: {algorithm.name} does not use reward functions; remove `rewards`"
            )
        return self

    @model_validator(mode="after")
    def check_group_rl(self) -> Recipe:
        """GRPO family: effective values for unset settings, then whole groups per batch."""
        algorithm = self.algorithm
        if isinstance(algorithm, GroupRLAlgorithm):
            algorithm.fill_effective_values(self.training.gradient_accumulation_steps)
            check_generation_batch(self, algorithm)
        return self

    @model_validator(mode="after")
    def check_kto_batch(self) -> Recipe:
        """KTO estimates its KL term from the other rows of each batch: a batch needs two."""
        if isinstance(self.algorithm, KTOAlgorithm) and self.training.batch_size < 2:
            raise ValueError(
                f"training.batch_size ({self.training.batch_size}): {self.algorithm.name} needs at "
                "least 2 rows per batch, because TRL estimates its KL term by pairing each "
                "prompt with another row's completion of the same batch "
                "(gradient_accumulation_steps does not help); set batch_size to 2 or more"
            )
        return self

    @model_validator(mode="after")
    def check_eval_steps(self) -> Recipe:
        """eval_steps evaluates on the eval split: without one it would silently do nothing."""
        data, steps = self.data, self.training.eval_steps
        if steps is not None and data.eval is None and data.eval_fraction is None:
            raise ValueError(
                f"training.eval_steps ({steps}) evaluates on eval data, and this recipe has "
                "none; set data.eval or data.eval_fraction, or remove eval_steps"
            )
        return self

    @property
    def base_dir(self) -> Path:
        """The folder that relative input paths (model, data, rewards) are resolved against."""
        return self._base_dir

    def with_base_dir(self, base_dir: Path) -> Recipe:
        """This recipe, with relative input paths resolved against `base_dir`."""
        self._base_dir = base_dir.resolve()
        return self

    def run_dir(self, output: str | Path | None = None) -> Path:
        """The run directory: `output` (--output), else `output.dir`, else runs/<run name>;
        relative to the current directory."""
        path = Path(output or self.output.dir or f"runs/{self.run_name}")
        # A symlink loop stays as written: `check_output` refuses it.
        return real_path(path) or Path(os.path.abspath(path))

    @property
    def run_name(self) -> str:
        """The run's name: `name`, else the algorithm."""
        return self.name or self.algorithm.name

    def to_yaml_dict(self) -> dict[str, Any]:
        """The recipe as plain data, every default spelled out."""
        return self.model_dump(mode="json")

    def local_references(self) -> dict[str, Path]:
        """Each field naming a local file or folder (`data.train.path`, ...) -> its absolute path.

        Hub ids are left out; the fields that may hold a path carry `paths.PATH_FIELD`.
        """
        return paths.local_references(self)

    def with_references(
        self, new: Mapping[str, str], host_paths: Mapping[str, str] | None = None
    ) -> Recipe:
        """A copy with these path fields replaced (container paths, absolute paths), unchecked;
        `host_paths` names the inputs as the user's host does (`paths.recorded_names`)."""
        return paths.with_references(self, new, host_paths)

    @property
    def host_paths(self) -> dict[str, str]:
        """Field (or `output.dir`) -> the user's host path, where a launcher handed them."""
        return dict(self._host_paths)

    def set_host_paths(self, host_paths: Mapping[str, str]) -> None:
        """Record the user's host path of each input (see `paths.recorded_names`)."""
        self._host_paths = dict(host_paths)


def check_generation_batch(recipe: Recipe, algorithm: GroupRLAlgorithm) -> None:
    """TRL needs whole groups per generation batch, in training and in evaluation."""
    training = recipe.training
    processes = recipe.distributed.processes_per_node
    group = algorithm.num_generations
    steps = algorithm.steps_per_generation or training.gradient_accumulation_steps
    batch = training.batch_size * steps * processes
    if batch % group:
        raise ValueError(
            f"training.batch_size ({training.batch_size}) x steps_per_generation ({steps}) x "
            f"processes ({processes}) = {batch} completions per generation, which is not a "
            f"multiple of algorithm.num_generations ({group}); make batch_size a multiple of "
            "num_generations"
        )
    has_eval = recipe.data.eval is not None or recipe.data.eval_fraction is not None
    if has_eval and (training.batch_size * processes) % group:
        raise ValueError(
            f"training.batch_size ({training.batch_size}) x processes ({processes}) = "
            f"{training.batch_size * processes} completions per evaluation batch, which is not a "
            f"multiple of algorithm.num_generations ({group}); make batch_size a multiple of "
            "num_generations"
        )
