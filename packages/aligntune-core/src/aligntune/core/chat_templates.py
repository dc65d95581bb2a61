"""The chat templates `model.chat_template` may name, written here from the public formats.

Each wraps the assistant's reply and the end-of-turn token that closes it in `{% generation %}`
markers, so TRL's `assistant_only_loss` trains exactly the reply and the token that stops it. A
named template needs its special tokens to be single tokens of the model's tokenizer
(`special_tokens`): aligntune never adds tokens (that would resize the embeddings, and a LoRA
run would then have to train and save them whole), it refuses the recipe instead
(`aligntune.core.template_check`).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

OPEN, CLOSE = "\ue000", "\ue001"
"""Private-use characters that mark where a `{% generation %}` block starts and ends."""


@dataclass(frozen=True)
class NamedTemplate:
    """A well-known chat format."""

    name: str
    text: str
    """The Jinja template (transformers' chat-template dialect, with generation markers)."""
    end_of_turn: str
    """The token that ends an assistant turn: the stop token at inference."""
    special_tokens: tuple[str, ...]
    """Tokens the template writes that must be single tokens of the tokenizer."""
    about: str
    """One line for the docs."""


def _turns(opening: str, closing: str, after: str = "\\n") -> str:
    """Each message as `opening` (a Jinja expression of `role`), its content and `closing`, then
    `after`; the assistant's content and `closing` inside generation tags."""
    return (
        "{%- for message in messages -%}"
        "{%- set role = message['role'] -%}"
        f"{{{{ {opening} }}}}"
        "{%- if role == 'assistant' -%}"
        f"{{% generation %}}{{{{ message['content'] + '{closing}' }}}}{{% endgeneration %}}"
        f"{{{{- '{after}' -}}}}"
        "{%- else -%}"
        f"{{{{ message['content'] + '{closing}{after}' }}}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}"
        f"{{%- set role = 'assistant' -%}}{{{{ {opening} }}}}"
        "{%- endif -%}"
    )


_CHATML = _turns("'<|im_start|>' + role + '\\n'", "<|im_end|>")

_QWEN_DEFAULT_SYSTEM = (
    "{%- if not messages or messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
)

_LLAMA_3 = "{{- '<|begin_of_text|>' -}}" + _turns(
    "'<|start_header_id|>' + role + '<|end_header_id|>\\n\\n'", "<|eot_id|>", after=""
)

# Mistral and Gemma have no system role: a system message is put before the first user message.
_FOLD_SYSTEM = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set messages = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- endif -%}"
)

_MISTRAL = (
    _FOLD_SYSTEM + "{{- '<s>' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + '</s>' }}{% endgeneration %}"
    "{%- else -%}"
    "{{ '[INST] ' + (system if loop.first else '') + message['content'] + ' [/INST]' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

_GEMMA = (
    _FOLD_SYSTEM + "{{- '<bos>' -}}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + '<end_of_turn>' }}{% endgeneration %}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{ (system if loop.first else '') + message['content'] + '<end_of_turn>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

TEMPLATES: tuple[NamedTemplate, ...] = (
    NamedTemplate(
        "chatml",
        _CHATML,
        "<|im_end|>",
        ("<|im_start|>", "<|im_end|>"),
        "ChatML: `<|im_start|>role` ... `<|im_end|>` (Qwen, SmolLM, many fine-tunes)",
    ),
    NamedTemplate(
        "qwen",
        _QWEN_DEFAULT_SYSTEM + _CHATML,
        "<|im_end|>",
        ("<|im_start|>", "<|im_end|>"),
        "ChatML with Qwen2's default system message when the conversation has none",
    ),
    NamedTemplate(
        "llama-3",
        _LLAMA_3,
        "<|eot_id|>",
        ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        "Llama 3: `<|start_header_id|>role<|end_header_id|>` ... `<|eot_id|>`",
    ),
    NamedTemplate(
        "mistral",
        _MISTRAL,
        "</s>",
        ("<s>", "</s>"),
        "Mistral instruct: `[INST] user [/INST]reply</s>`; a system message opens the first turn",
    ),
    NamedTemplate(
        "gemma",
        _GEMMA,
        "<end_of_turn>",
        ("<bos>", "<start_of_turn>", "<end_of_turn>"),
        "Gemma: `<start_of_turn>user` / `<start_of_turn>model` ... `<end_of_turn>`",
    ),
)
"""The names `model.chat_template` accepts; anything else must be a Jinja template's text."""

TEMPLATE_NAMES = tuple(t.name for t in TEMPLATES)


def named_template(value: str | None) -> NamedTemplate | None:
    """The named template `value` names, or None (a template's text, or unset)."""
    return next((t for t in TEMPLATES if t.name == value), None)


def template_text(value: str | None) -> str | None:
    """The Jinja text `model.chat_template` stands for: a name's template, else the value."""
    named = named_template(value)
    return named.text if named is not None else value


def unknown_name_message(value: str) -> str:
    """Why `value` (no Jinja syntax, not a name) is no chat template, with the valid names."""
    close = difflib.get_close_matches(value, TEMPLATE_NAMES, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"unknown chat template name {value!r}{guess}; valid names: "
        f"{', '.join(TEMPLATE_NAMES)}, or a Jinja template's text (a tokenizer_config.json's "
        "chat_template); leave it unset to keep the tokenizer's"
    )


@cache
def jinja_environment() -> Any:
    """A Jinja environment like transformers' for chat templates, whose `generation` tag marks
    its output with OPEN and CLOSE (jinja2 is imported only here)."""
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationMarks(Extension):
        tags = {"generation"}  # noqa: RUF012 - jinja2 reads the class attribute

        def parse(self, parser: Any) -> Any:
            line = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_mark"), [], [], body).set_lineno(line)

        def _mark(self, caller: Any) -> str:
            return f"{OPEN}{caller()}{CLOSE}"

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationMarks, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False, **kw)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: "26 Jul 2024"  # a fixed date: renders repeatably
    return env


def parse_problem(template: str) -> str | None:
    """Why `template` is not valid Jinja in transformers' dialect (`generation` tags included)."""
    import jinja2

    try:
        jinja_environment().parse(template)
    except jinja2.TemplateSyntaxError as exc:
        return f"not valid Jinja: line {exc.lineno} of the template: {exc.message}"
    return None
