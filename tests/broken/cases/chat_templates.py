"""Chat templates that would train the wrong tokens: a named template whose special tokens the
model's tokenizer lacks, a template with no generation markers while only the assistant's turns
are trained, the reply or the stop token outside the trained span. Each is refused before launch,
from the recipe, its first data row and the model folder's tokenizer files."""

from broken_harness import TINY, Case, recipe

ASSISTANT_ONLY = {"name": "sft", "assistant_only_loss": True}


def with_template(template: str, algorithm: dict[str, object] = ASSISTANT_ONLY) -> dict[str, str]:
    """The tiny SFT recipe with `model.chat_template: template` and this algorithm section."""
    model = {"name_or_path": str(TINY / "model"), "chat_template": template}
    return {"recipe.yaml": recipe(model=model, algorithm=algorithm)}


PLAIN = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}<|im_end|>\n{% endfor %}"
REPLY_ONLY = (
    "{% for m in messages %}{{ m['role'] }}: "
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}{% endgeneration %}"
    "<|im_end|>{% else %}{{ m['content'] }}<|im_end|>{% endif %}\n{% endfor %}"
)
USER_ONLY = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ m['content'] }}<|im_end|>{% endif %}{% endfor %}"
)
RAISES = (
    "{% for m in messages %}{{ raise_exception('no ' + m['role'] + ' role here') }}{% endfor %}"
)
NO_STOP = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"

CASES = [
    Case(
        "chat-template-named-tokens-missing",
        with_template("llama-3", {"name": "sft"}),
        r"model\.chat_template: 'llama-3' writes <\|begin_of_text\|>, .*which .* tokenizer does "
        r"not have as tokens .*aligntune adds no tokens",
    ),
    Case(
        "chat-template-no-generation-markers",
        with_template(PLAIN),
        r"algorithm\.assistant_only_loss: model\.chat_template has no {{% generation %}} "
        r"markers, so no token of .*sft\.jsonl:1 would be trained",
    ),
    Case(
        "chat-template-stop-token-outside",
        with_template(REPLY_ONLY),
        r"model\.chat_template: model\.chat_template does not train the stop token "
        r"'<\|im_end\|>' after the assistant's reply in .*sft\.jsonl:1",
    ),
    Case(
        "chat-template-trains-the-user",
        with_template(USER_ONLY),
        r"leaves the assistant's reply 'The capital of France is Paris\.' of .*sft\.jsonl:1 "
        r"outside the trained span",
    ),
    Case(
        "chat-template-raises",
        with_template(RAISES, {"name": "sft"}),
        r"model\.chat_template: rendering the first training row failed: TemplateError: no user "
        r"role here",
    ),
    Case(
        "chat-template-never-stops",
        with_template(NO_STOP, {"name": "sft"}),
        r"does not train the stop token '<\|im_end\|>' after the assistant's reply",
    ),
]
