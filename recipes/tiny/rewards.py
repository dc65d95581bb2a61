"""A toy reward that a tiny random model can learn within a few GRPO steps."""


def digit_share(completions, **kwargs):
    """The share of characters in each completion that are digits (TRL's reward contract)."""
    texts = [c if isinstance(c, str) else "".join(m["content"] for m in c) for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(1, len(t)) for t in texts]
