"""Render one training row with the chat template a run will use and check what gets trained.

Before anything starts, an SFT recipe's first conversational row is rendered with the effective
template (`model.chat_template`, else the local tokenizer's) the way transformers renders it, its
trained spans found turn by turn as the runner finds them (`trained_turns.trained_spans`), and
the recipe is refused when an assistant reply is not what is trained or the stop token is not
trained after the reply (the model would never learn to stop). A named template's special
tokens must be tokens of the tokenizer. Only the recipe, its data and the model folder's
tokenizer files are read; for a hub model the runner does the same check with the tokenizer it
loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aligntune.core.algorithm_sections import SFTAlgorithm
from aligntune.core.chat_templates import (
    CLOSE,
    OPEN,
    TEMPLATE_NAMES,
    jinja_environment,
    named_template,
    template_text,
)
from aligntune.core.conversations import read_tools, read_turns
from aligntune.core.data_check import TurnNames, sample_rows
from aligntune.core.model_folder import TokenizerFacts, folder_facts
from aligntune.core.paths import local_path
from aligntune.core.recipe import Recipe
from aligntune.core.sections import DataSource
from aligntune.core.trained_turns import Render, trained_spans, trains

FIELD = "model.chat_template"


@dataclass(frozen=True)
class Rendered:
    """A row rendered with a template: its text and the character spans that are trained."""

    where: str
    text: str
    trained: tuple[tuple[int, int], ...]
    replies: tuple[str, ...]
    """The assistant's replies in the row."""

    def marked(self, start: str, end: str) -> str:
        """The text with each trained span between `start` and `end`."""
        out, last = [], 0
        for a, b in self.trained:
            out += [self.text[last:a], start, self.text[a:b], end]
            last = b
        return "".join([*out, self.text[last:]])


def _renderer(template: str, facts: TokenizerFacts, tools: Any) -> Render:
    """The template applied as transformers applies it; generation markers play no part."""
    compiled = jinja_environment().from_string(template)

    def render(turns: list[dict[str, Any]], opening: bool) -> str:
        text = compiled.render(
            messages=turns,
            tools=tools,
            add_generation_prompt=opening,
            bos_token=facts.bos_token or "",
            eos_token=facts.eos_token or "",
        )
        return str(text).replace(OPEN, "").replace(CLOSE, "")

    return render


def render(
    template: str,
    messages: list[dict[str, Any]],
    facts: TokenizerFacts,
    where: str,
    user_turns: bool = False,
    tools: Any = None,
) -> Rendered:
    """`messages` (turns in aligntune's shape) rendered with `template`, with the spans of the
    turns SFT trains."""
    text, spans = trained_spans(_renderer(template, facts, tools), messages, user_turns)
    replies = tuple(
        m["content"]
        for m in messages
        if m.get("role") == "assistant" and m.get("content") and trains(m, user_turns)
    )
    return Rendered(where, text, tuple(spans), replies)


def _conversation(
    recipe: Recipe, source: DataSource, row: dict[str, Any]
) -> list[dict[str, Any]] | None:
    """The row's turns as the runner trains them (system prompt first), or None when the row is
    not a conversation (`messages` or ShareGPT `conversations`)."""
    names = TurnNames(source.fields, source.roles)
    for column, style in (("messages", "messages"), ("conversations", "sharegpt")):
        if isinstance(row.get(column), list):
            turns = read_turns(row[column], names.style(style), column)
            break
    else:
        return None
    if isinstance(row.get("system"), str) and row["system"] and turns[0]["role"] != "system":
        turns = [{"role": "system", "content": row["system"]}, *turns]
    system = recipe.data.system_prompt
    if system is not None and turns[0]["role"] != "system":
        turns = [{"role": "system", "content": system}, *turns]
    return turns


def training_sample(recipe: Recipe, facts: TokenizerFacts) -> Rendered | str:
    """The first training row rendered as SFT trains it, or why there is none to show."""
    algorithm = recipe.algorithm
    template = template_text(recipe.model.chat_template) or facts.chat_template
    if not isinstance(algorithm, SFTAlgorithm):
        return f"the render check covers SFT; this recipe trains {algorithm.name}"
    if template is None:
        return "no chat template: rows are trained as plain text"
    source = recipe.data.train_sources()[0][1]
    rows = sample_rows(source, recipe.base_dir)
    if not rows:
        return "no local rows to render (hub or parquet data)"
    where, row = rows[0]
    messages = _conversation(recipe, source, row)
    if messages is None:
        return f"{where} is not a conversation (`messages`): TRL renders other rows itself"
    tools = read_tools(row["tools"]) if row.get("tools") else None
    user_turns = not algorithm.assistant_only_loss
    return render(template, messages, facts, where, user_turns, tools)


def _template_source(recipe: Recipe) -> str:
    value = recipe.model.chat_template
    if value is None:
        return f"the chat template of {recipe.model.name_or_path}'s tokenizer"
    return f"chat template {value!r}" if named_template(value) else "model.chat_template"


def sample_problems(recipe: Recipe, sample: Rendered, facts: TokenizerFacts) -> list[str]:
    """Why the rendered row would not train the assistant's replies and the stop token."""
    source = _template_source(recipe)
    problems = []
    inside = "".join(sample.text[a:b] for a, b in sample.trained)
    for reply in sample.replies:
        if reply not in inside:
            problems.append(
                f"{FIELD}: {source} does not write the assistant's reply {reply[:40]!r} of "
                f"{sample.where} where its turn is: it cannot be trained"
            )
    stop = _stop_token(recipe, facts)
    last = _last_reply_end(sample)
    if stop is not None and last is not None and not _trained_after(sample, stop, last):
        problems.append(
            f"{FIELD}: {source} does not train the stop token {stop!r} after the assistant's "
            f"reply in {sample.where}: the model would not learn to stop; write it right after "
            "the reply, or name the template (a named template's end-of-turn token is its stop "
            f"token): {', '.join(TEMPLATE_NAMES)}"
        )
    return problems


_PROBE = ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"})
"""A conversation rendered to find the token a template closes the assistant's turn with."""


def end_of_turn(template: str, facts: TokenizerFacts) -> str | None:
    """The special token the template writes right after an assistant reply (`<|im_end|>` in a
    ChatML-style template, the eos in others), or None when it writes none there."""
    text = _renderer(template, facts, None)(list(_PROBE), False)
    reply = _PROBE[-1]["content"]
    if reply not in text:
        return None
    after = text[text.rindex(reply) + len(reply) :].lstrip()
    candidates = sorted({*facts.special, *filter(None, [facts.eos_token])}, key=len, reverse=True)
    return next((token for token in candidates if after.startswith(token)), None)


def stop_token(value: str | None, template: str | None, facts: TokenizerFacts) -> str | None:
    """The token that ends a reply: a named template's end-of-turn, else the special token the
    template closes a reply with, else the tokenizer's eos."""
    named = named_template(value)
    if named is not None:
        return named.end_of_turn
    closing = None
    if template is not None:
        try:
            closing = end_of_turn(template, facts)
        except Exception:  # the template's own errors are reported by the row's render
            closing = None
    return closing or facts.eos_token


def _stop_token(recipe: Recipe, facts: TokenizerFacts) -> str | None:
    template = template_text(recipe.model.chat_template) or facts.chat_template
    return stop_token(recipe.model.chat_template, template, facts)


def _last_reply_end(sample: Rendered) -> int | None:
    """Where the last assistant reply ends in the rendered text (None: no reply, or not there)."""
    if not sample.replies or sample.replies[-1] not in sample.text:
        return None
    return sample.text.rindex(sample.replies[-1]) + len(sample.replies[-1])


def _trained_after(sample: Rendered, token: str, position: int) -> bool:
    at = sample.text.find(token, position)
    return at >= 0 and any(a <= at and at + len(token) <= b for a, b in sample.trained)


def token_problems(recipe: Recipe, facts: TokenizerFacts, where: str) -> list[str]:
    """A named template's special tokens that the tokenizer does not have as tokens."""
    named = named_template(recipe.model.chat_template)
    if named is None or facts.tokens is None:
        return []
    missing = [t for t in named.special_tokens if t not in facts.tokens]
    if not missing:
        return []
    return [
        f"{FIELD}: {named.name!r} writes {', '.join(missing)}, which {where}'s tokenizer does not "
        "have as tokens (they would be trained as plain text, and generation would not stop); "
        "aligntune adds no tokens (the embeddings would grow); name the template the model "
        "was trained with, or give a Jinja template in the tokens it has"
    ]


def render_problems(recipe: Recipe, facts: TokenizerFacts, where: str) -> list[str]:
    """Every problem the rendered first row shows, and a named template's missing tokens."""
    problems = token_problems(recipe, facts, where)
    try:
        sample = training_sample(recipe, facts)
    except Exception as exc:  # the template is the user's code: any error is theirs to see
        failed = f"{type(exc).__name__}: {exc}"[:300]
        return [*problems, f"{FIELD}: rendering the first training row failed: {failed}"]
    if isinstance(sample, Rendered):
        problems += sample_problems(recipe, sample, facts)
    return problems


def local_facts(recipe: Recipe) -> TokenizerFacts | None:
    """The local policy folder's tokenizer facts, or None for a hub model."""
    folder = local_path(recipe.model.name_or_path, recipe.base_dir)
    return folder_facts(folder) if folder is not None else None


HUB_NOTE = (
    "{model} is a hub model (no tokenizer here): the runner renders and checks the first row "
    "with the tokenizer it loads, before it writes anything"
)

MARKS = ("[[", "]]")
"""How `plan --show-sample` marks the trained spans of the rendered row."""


def sample_lines(recipe: Recipe) -> list[str]:
    """What `aligntune plan --show-sample` prints: the first row as it is trained, marked."""
    facts = local_facts(recipe)
    if facts is None:
        return [f"sample:    {HUB_NOTE.format(model=recipe.model.name_or_path)}"]
    sample = training_sample(recipe, facts)
    if isinstance(sample, str):
        return [f"sample:    none: {sample}"]
    trained = (
        "the assistant's turns"
        if isinstance(recipe.algorithm, SFTAlgorithm) and recipe.algorithm.assistant_only_loss
        else "the user's and the assistant's turns (assistant_only_loss is off)"
    )
    return [
        f"sample:    {sample.where} rendered with {_template_source(recipe)}; trained: "
        f"{trained}, between {MARKS[0]} and {MARKS[1]}",
        *sample.marked(*MARKS).splitlines(),
    ]


def runner_check_note(recipe: Recipe) -> str | None:
    """For a hub model whose chat template a check would read: that the runner checks it."""
    checked = isinstance(recipe.algorithm, SFTAlgorithm) or recipe.model.chat_template
    if local_facts(recipe) is not None or not checked:
        return None
    return HUB_NOTE.format(model=recipe.model.name_or_path)
