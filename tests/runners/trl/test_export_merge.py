"""`aligntune export --runtime local` on real tiny runs: what a user loads afterwards.

A LoRA run (3 SFT steps) and a full fine-tune (2 steps) are trained once for the module. The
merged export loads with plain transformers and gives the logits of base + adapter; the adapter
export loads with peft on its own; a merge that dropped the adapter and a full disk both fail
with one line and leave no folder; the run directory never changes.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from trl_helpers import make_run, tree_snapshot

from aligntune.runners.common import merge
from aligntune.runners.common.export_check import PROMPTS
from aligntune.runners.trl.cli import main as runner_main

pytestmark = pytest.mark.training

REPO = Path(__file__).resolve().parents[3]
TINY = REPO / "recipes" / "tiny"


def train(root: Path, name: str, peft: dict[str, Any], steps: int, **model: Any) -> Path:
    """A finished tiny SFT run in root/runs/name, on a private copy of the tiny model."""
    if not (root / "model").exists():
        shutil.copytree(TINY / "model", root / "model")
    recipe = {
        "name": name,
        "algorithm": {"name": "sft"},
        "model": {"name_or_path": "./model", "peft": peft, **model},
        "data": {"train": {"path": str(TINY / "data" / "sft.jsonl")}, "max_length": 64},
        "training": {"max_steps": steps, "batch_size": 8, "learning_rate": 5e-3},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    make_run(path, root / "runs" / name).train()
    return root / "runs" / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One LoRA run and one full fine-tune, finished."""
    root = tmp_path_factory.mktemp("export")
    return {
        "lora": train(root, "lora", {"method": "lora", "r": 8, "alpha": 16}, 3),
        "full": train(root, "full", {"method": "full"}, 2),
    }


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA run in bfloat16 on the tiny model saved in several safetensors shards."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("sharded")
    model = AutoModelForCausalLM.from_pretrained(TINY / "model")
    model.save_pretrained(root / "model", max_shard_size="100KB")
    AutoTokenizer.from_pretrained(TINY / "model").save_pretrained(root / "model")
    lora = {"method": "lora", "r": 8, "alpha": 16}
    return train(root, "bf16", lora, 2, dtype="bfloat16")


def aligntune(*args: str) -> subprocess.CompletedProcess[str]:
    """`aligntune ARGS` as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "aligntune.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def logits(model: Any, tokenizer: Any) -> Any:
    """Next-token logits for the fixed prompts, stacked."""
    import torch

    rows = []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tokenizer(prompt, return_tensors="pt").input_ids
            rows.append(model(input_ids=ids).logits[0, -1])
    return torch.stack(rows)


def trained_logits(run: Path) -> Any:
    """The trained model as training left it: the base with final/'s adapter, unmerged."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(run.parent.parent / "model")
    model = PeftModel.from_pretrained(base, run / "final").eval()
    return logits(model, AutoTokenizer.from_pretrained(run / "final"))


def siblings(run: Path) -> list[str]:
    """What sits beside the run (an export's folder; never a leftover staging folder)."""
    return sorted(p.name for p in run.parent.iterdir())


def test_merged_export_loads_with_plain_transformers_and_matches_base_plus_adapter(
    runs: dict[str, Path],
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = runs["lora"]
    before = tree_snapshot(run)
    done = aligntune("export", str(run), "--runtime", "local")
    assert done.returncode == 0, done.stderr
    merged = run.parent / "lora-merged"
    assert done.stdout.splitlines()[-1] == f"exported: {merged}"
    assert siblings(run) == ["full", "lora", "lora-merged"]
    assert tree_snapshot(run) == before
    files = {p.name for p in merged.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "export.json"} <= files
    assert "generation_config.json" in files and "chat_template.jinja" in files
    assert not any(name.startswith("adapter_") for name in files)

    model = AutoModelForCausalLM.from_pretrained(merged).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    difference = float((logits(model, tokenizer) - trained_logits(run)).abs().max())
    assert difference < 1e-4

    record = json.loads((merged / "export.json").read_text())
    assert record["format"] == "merged" and record["dtype"] == "float32"
    assert record["source_run"] == str(run) and record["base"] == str(run.parent.parent / "model")
    assert record["merged_weights"] == 14  # q, k, v, o, gate, up, down in each of 2 layers
    check = record["check"]
    assert check["passed"] and check["max_abs_logit_diff"] <= check["tolerance"] < 1e-3
    assert check["conclusive"]
    assert check["adapter_effect"] > 100 * check["tolerance"]  # a dropped adapter would show
    assert record["versions"]["transformers"] and record["versions"]["peft"]


def test_adapter_export_loads_alone_with_peft_on_the_named_base(runs: dict[str, Path]) -> None:
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    run = runs["lora"]
    target = run.parent / "only-the-adapter"
    done = aligntune("export", str(run), "-f", "adapter", "-o", str(target), "--runtime", "local")
    assert done.returncode == 0, done.stderr
    config = json.loads((target / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(run.parent.parent / "model")
    model = AutoPeftModelForCausalLM.from_pretrained(target).eval()
    exported = logits(model, AutoTokenizer.from_pretrained(target))
    assert float((exported - trained_logits(run)).abs().max()) == 0.0
    assert json.loads((target / "export.json").read_text())["check"]["max_abs_logit_diff"] == 0.0


def test_a_full_fine_tune_exports_its_final_model_as_it_is(runs: dict[str, Path]) -> None:
    run = runs["full"]
    done = aligntune("export", str(run), "--runtime", "local")
    assert done.returncode == 0, done.stderr
    merged = run.parent / "full-merged"
    final = run / "final"
    for path in final.iterdir():
        if path.name not in ("training_args.bin", "README.md"):
            assert (merged / path.name).read_bytes() == path.read_bytes(), path.name
    record = json.loads((merged / "export.json").read_text())
    assert record["peft_method"] == "full" and record["merged_weights"] is None
    assert (
        record["check"]["max_abs_logit_diff"] == 0.0 and record["check"]["adapter_effect"] is None
    )
    refused = aligntune("export", str(run), "-f", "adapter", "-o", str(run.parent / "x"))
    assert refused.returncode == 1
    assert "is a full fine-tune: it has no adapter to export" in refused.stderr


def test_a_merge_that_drops_the_adapter_fails_the_check_and_keeps_nothing(
    runs: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The merge's own arithmetic zeroed; the real check runs on the real written folder."""
    import torch

    monkeypatch.setattr(
        merge.LoraPair, "delta", lambda pair: torch.zeros(pair.b.shape[0], pair.a.shape[1])
    )
    run = runs["lora"]
    before = tree_snapshot(run)
    code = runner_main(["export", str(run), "--output", str(tmp_path / "dropped")])
    err = capsys.readouterr().err
    assert code == 70
    assert "error: export check failed: the merged model reloaded from disk gives" in err
    assert "it matches the base without the adapter: the adapter was dropped" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [] and tree_snapshot(run) == before  # no .partial left


def test_a_full_disk_is_one_line_and_leaves_no_folder(
    runs: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """safetensors reports a full disk as its own error naming the errno, as here."""
    import safetensors.torch

    def full(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "Error while serializing: I/O error: No space left on device (os error 28): "
            'IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    run = runs["lora"]
    before = tree_snapshot(run)
    code = runner_main(["export", str(run), "--output", str(tmp_path / "full")])
    err = capsys.readouterr().err
    assert code == 1
    assert (
        err.splitlines()[0] == f"error: cannot write {tmp_path / 'full'}: No space left on device"
    )
    assert "hint: free space on that disk" in err
    assert list(tmp_path.iterdir()) == [] and tree_snapshot(run) == before  # no .partial left


def test_a_qlora_run_merges_only_where_bitsandbytes_runs(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The 4-bit path's CPU half: the weights it would round-trip are exactly the Linear layers
    LoRA's all-linear adapted (not the tied head); without CUDA it refuses, exit 3, nothing kept."""
    run = tmp_path / "qlora"
    shutil.copytree(runs["lora"], run)
    settings = json.loads((run / "trainer_settings.json").read_text())
    settings["model_init"]["quantization"] = "4bit"
    (run / "trainer_settings.json").write_text(json.dumps(settings))
    base = runs["lora"].parent.parent / "model"
    assert merge.quantized_weights(base) == set(merge.load_adapter(run / "final"))
    code = runner_main(["export", str(run), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 3 and "error: merging a QLoRA adapter needs a CUDA GPU" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qlora"]


def test_a_sharded_base_merges_shard_by_shard_in_the_training_dtype(sharded_run: Path) -> None:
    import torch
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = sharded_run.parent.parent / "model"
    done = aligntune("export", str(sharded_run), "--runtime", "local")
    assert done.returncode == 0, done.stderr
    merged = sharded_run.parent / "bf16-merged"
    shards = sorted(p.name for p in base.glob("*.safetensors"))
    assert len(shards) > 1 and sorted(p.name for p in merged.glob("*.safetensors")) == shards
    assert f"aligntune: merged shard {len(shards)}/{len(shards)}" in done.stdout
    index = json.loads((merged / "model.safetensors.index.json").read_text())
    size = 0
    for name in shards:
        with safe_open(str(merged / name), framework="pt") as shard:
            for key in shard.keys():  # noqa: SIM118 - a safetensors handle is not a dict
                tensor = shard.get_tensor(key)
                assert tensor.dtype == torch.bfloat16, key
                size += tensor.numel() * tensor.element_size()
    assert index["metadata"]["total_size"] == size
    assert json.loads((merged / "config.json").read_text())["dtype"] == "bfloat16"

    tokenizer = AutoTokenizer.from_pretrained(merged)
    model = AutoModelForCausalLM.from_pretrained(merged).eval()
    assert model.dtype == torch.bfloat16
    trained = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16), sharded_run / "final"
    ).eval()
    expected = logits(trained, tokenizer).float()
    difference = float((logits(model, tokenizer).float() - expected).abs().max())
    record = json.loads((merged / "export.json").read_text())
    assert record["dtype"] == "bfloat16"
    assert difference <= 0.04 * max(1.0, float(expected.abs().max()))
    assert record["check"]["max_abs_logit_diff"] <= record["check"]["tolerance"]


MAKE = """
import sys, torch
from peft import LoraConfig, get_peft_model
from transformers import Qwen2Config, Qwen2ForCausalLM
torch.manual_seed(0)
config = Qwen2Config(vocab_size=512, hidden_size=512, intermediate_size=1536, num_hidden_layers=12,
                     num_attention_heads=8, num_key_value_heads=4, tie_word_embeddings=True)
model = Qwen2ForCausalLM(config)
model.save_pretrained(sys.argv[1] + "/base", max_shard_size="4MB")
lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
get_peft_model(model, lora).save_pretrained(sys.argv[1] + "/adapter")
"""
MEASURE = """
import resource, sys
from pathlib import Path
import safetensors.torch, torch, transformers
from aligntune.runners.common import merge
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
root = Path(sys.argv[1])
before = peak()
(root / "merged").mkdir()
merge.merge_shards(
    root / "base", root / "adapter", root / "merged", "float32",
    progress=lambda line: print(line, peak() - before),
)
"""


def test_the_merge_holds_one_shard_not_the_model(tmp_path: Path) -> None:
    """A 150 MB model in 4 MB shards: the merge's peak memory stops growing after the first
    shards (allocator and writer warm-up) and stays flat to the last one, so it does not grow
    with the model: a model larger than memory merges the same way."""
    python = [sys.executable, "-c"]
    subprocess.run([*python, MAKE, str(tmp_path)], check=True, capture_output=True, timeout=300)
    done = subprocess.run(
        [*python, MEASURE, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    files = list((tmp_path / "base").glob("*.safetensors"))
    size, largest = sum(p.stat().st_size for p in files), max(p.stat().st_size for p in files)
    grown = [int(line.rsplit(" ", 1)[1]) for line in done.stdout.splitlines()]
    assert size > 140e6 and len(grown) == len(files) > 30
    third = len(grown) // 3
    assert grown[-1] - grown[third] < 2 * largest, f"peak memory kept growing: {grown}"
    assert grown[-1] < size / 2, f"peak memory grew by {grown[-1]} bytes for {size}"


def test_an_adapter_for_another_model_is_refused_before_anything_is_written(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    from aligntune.core.errors import ModelError

    base = tmp_path / "other-base"
    shutil.copytree(runs["lora"].parent.parent / "model", base)
    weights = load_file(str(base / "model.safetensors"))
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "out").mkdir()
    with pytest.raises(ModelError, match=r"the adapter changes 1 weight\(s\) the base .* does not"):
        merge.merge_shards(base, runs["lora"] / "final", tmp_path / "out", "float32")
    assert list((tmp_path / "out").iterdir()) == []


def processes_naming(text: str) -> list[int]:
    """The pids of live processes whose command line holds `text`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue  # ended meanwhile
    return found


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_an_export_stopped_by_a_signal_leaves_no_folder_and_no_runner(
    runs: dict[str, Path], signum: int, tmp_path: Path
) -> None:
    run = runs["lora"]
    before = tree_snapshot(run)
    command = [sys.executable, "-m", "aligntune.cli.main", "export", str(run), "--runtime"]
    launcher = subprocess.Popen(
        [*command, "local", "--output", str(tmp_path / "stopped")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not any(p.is_file() for p in tmp_path.glob(".stopped.*.partial/*")):
        assert launcher.poll() is None and time.time() < deadline, launcher.communicate()
        time.sleep(0.05)
    staging = next(tmp_path.glob(".stopped.*.partial")).name
    launcher.send_signal(signum)  # while the runner writes and checks the export
    _, err = launcher.communicate(timeout=60)
    while processes_naming(staging) and time.time() < deadline:
        time.sleep(0.2)

    assert processes_naming(staging) == []  # the runner ended with its launcher
    assert list(tmp_path.iterdir()) == [] and tree_snapshot(run) == before
    if signum == signal.SIGTERM:
        assert launcher.returncode == 143
        assert "error: stopped by SIGTERM; the export wrote nothing" in err
