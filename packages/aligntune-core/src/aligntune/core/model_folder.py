"""A local model folder, checked without the training stack: it exists, its JSON files parse, its
config names a `model_type`, its safetensors headers read, and a policy has tokenizer files.
Each problem is a sentence about the folder, for the caller to put its field in front. Also what
the chat-template checks need of its tokenizer, read from those files (`folder_facts`)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKENIZER_FILES = (("tokenizer.json",), ("tokenizer.model",), ("vocab.json", "merges.txt"))
"""The file sets a tokenizer loads from (fast, SentencePiece, byte-level BPE)."""

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
"""The files `from_pretrained` loads a model's weights from (one file, or a shard index)."""

_TOKENIZER_CONFIG = "tokenizer_config.json"
"""Settings only: without one of TOKENIZER_FILES beside it there is no vocabulary."""

_JSON_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json")
"""The JSON files transformers reads from a model folder (when present)."""

_MAX_HEADER = 100 * 2**20
"""A safetensors header larger than this is no header (the format allows at most 100 MB)."""


def model_folder_problems(folder: Path, tokenizer: bool) -> list[str]:
    """What keeps `folder` from loading as a transformers model (and, with `tokenizer`, its
    tokenizer): each a sentence, none when it looks sound."""
    if not folder.is_dir():
        return [f"model folder {folder} not found"]
    if not (folder / "config.json").is_file():
        return [f"{folder} has no config.json (not a transformers model)"]
    problems = [problem for name in _JSON_FILES if (problem := _json_problem(folder / name))]
    if not problems and not isinstance(_read_json(folder / "config.json").get("model_type"), str):
        problems.append(f"{folder / 'config.json'} names no model_type (which architecture?)")
    problems += [p for w in sorted(folder.glob("*.safetensors")) if (p := _weights_problem(w))]
    if tokenizer and (missing := _tokenizer_problem(folder)):
        problems.append(missing)
    fast = folder / "tokenizer.json"
    read = tokenizer and not problems and fast.is_file()
    if read and not isinstance(_read_json(fast).get("model"), dict):
        problems.append(f'{fast} holds no tokenizer (no "model" section); copy it again')
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        problems.append(
            f"{folder} has no weights: it needs {' or '.join(WEIGHT_FILES[:2])} (the index of "
            "a sharded model); was the model copied whole?"
        )
    return problems


def _read_json(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _json_problem(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        return f"{path} is not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})"
    if not isinstance(data, dict):
        return f"{path} holds a JSON {type(data).__name__}, not an object"
    return None


def _weights_problem(path: Path) -> str | None:
    """Whether a safetensors file starts with its header: 8 bytes of length, then JSON."""
    why = "its header cannot be read"
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            size = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            if 0 < size <= min(_MAX_HEADER, path.stat().st_size - 8):
                header = json.loads(handle.read(size))
                if isinstance(header, dict):
                    return None
    except (OSError, ValueError) as exc:
        why = f"its header cannot be read ({exc})"
    return f"{path} is not a safetensors file: {why}; copy the model again"


def _tokenizer_problem(folder: Path) -> str | None:
    """What a local model folder lacks to hold a tokenizer, or None."""
    if any(all((folder / name).is_file() for name in files) for files in TOKENIZER_FILES):
        return None
    needs = ", ".join(" with ".join(files) for files in TOKENIZER_FILES)
    known = sorted({name for files in TOKENIZER_FILES for name in files} | {_TOKENIZER_CONFIG})
    partial = [name for name in known if (folder / name).is_file()]
    found = f"; it has only {', '.join(partial)}" if partial else ""
    return f"{folder} has no tokenizer files: it needs one of {needs}{found}"


def chat_template_text(folder: Path) -> str | None:
    """The chat template(s) a local model folder ships, as one text, or None: a
    `chat_template.jinja`, `chat_template.json`, or `tokenizer_config.json`'s `chat_template`
    (one template, or a list of named ones)."""
    texts: list[str] = []
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        texts.append(jinja.read_text(encoding="utf-8", errors="replace"))
    for name in ("chat_template.json", _TOKENIZER_CONFIG):
        path = folder / name
        if path.is_file() and _json_problem(path) is None:
            value = _read_json(path).get("chat_template")
            named = value if isinstance(value, list) else [{"template": value}]
            texts += [str(t["template"]) for t in named if isinstance(t, dict) and _is_text(t)]
    return "\n".join(texts) if texts else None


def _is_text(named: dict[str, object]) -> bool:
    return isinstance(named.get("template"), str)


@dataclass(frozen=True)
class TokenizerFacts:
    """What a check needs of the tokenizer: its template, special tokens and vocabulary."""

    chat_template: str | None
    eos_token: str | None
    bos_token: str | None = None
    tokens: frozenset[str] | None = None
    """Every token it knows as one token; None when that cannot be read without loading it."""
    special: frozenset[str] = frozenset()
    """Its special tokens (eos, end-of-turn markers such as `<|im_end|>`, ...)."""


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or `{"content": ...}`."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def folder_facts(folder: Path) -> TokenizerFacts:
    """A local model folder's tokenizer, read from its JSON files (never loaded)."""
    config = _read(folder / _TOKENIZER_CONFIG)
    template = config.get("chat_template")
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    tokens: set[str] = set()
    tokenizer = _read(folder / "tokenizer.json")
    vocab = tokenizer.get("model", {}).get("vocab") if tokenizer else None
    if isinstance(vocab, list):  # Unigram: [piece, score] pairs
        vocab = {str(entry[0]): 0 for entry in vocab if isinstance(entry, list) and entry}
    known = isinstance(vocab, dict) or (folder / "vocab.json").is_file()
    tokens.update(vocab if isinstance(vocab, dict) else _read(folder / "vocab.json"))
    added = [t for t in tokenizer.get("added_tokens", []) if isinstance(t, dict)]
    decoder = [t for t in config.get("added_tokens_decoder", {}).values() if isinstance(t, dict)]
    tokens.update(str(t.get("content", "")) for t in [*added, *decoder])
    special = {str(t.get("content", "")) for t in [*added, *decoder] if t.get("special")}
    return TokenizerFacts(
        chat_template=template if isinstance(template, str) else None,
        eos_token=_token_text(config.get("eos_token")),
        bos_token=_token_text(config.get("bos_token")),
        tokens=frozenset(tokens) if known else None,
        special=frozenset(special - {""}),
    )
