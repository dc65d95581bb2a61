"""Chat templates that would train the wrong tokens: a named template whose special tokens the
model's tokenizer lacks, a template that fails to render, one that never writes the stop token
after a reply. Each is refused before launch, from the recipe, its first data row and the model
folder's tokenizer files. (Generation markers play no part: aligntune finds each turn's tokens by
rendering the conversation turn by turn; tests/core/test_chat_templates.py shows templates
without them training exactly the replies.)"""

from broken_harness import TINY, Case, recipe


def with_template(template: str, algorithm: dict[str, object]) -> dict[str, str]:
    """The tiny SFT recipe with `model.chat_template: template` and this algorithm section."""
    model = {"name_or_path": str(TINY / "model"), "chat_template": template}
    return {"recipe.yaml": recipe(model=model, algorithm=algorithm)}


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
