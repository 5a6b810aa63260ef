"""The embedded default learns; the same job with shuffled advantages does not (slow; cold start is cached).

A shorter version of `sspo-exp train` (the composed default config, fewer steps and held-out problems). The
control permutes the advantages within each rollout: the same update sizes, no credit assignment.
"""

from __future__ import annotations

import pytest
from sspo_exp import keys
from train_helpers import train_learning_run

pytestmark = pytest.mark.slow
STEPS, EVAL = 30, 100
# conf/trainer/cpu.yaml has learning_rate 5e-4, at which TRL's own GRPO and ours both collapse the cold-started
# policy (held-out 51.5% -> 1.0% in 60 steps); 1e-4 and 3e-5 learn (51.5% -> 93.5% / 96.0% in 40 steps).
# Drop this override once cpu.yaml's value is lowered.
LEARNING_RATE = 1e-4
OVERRIDES = [f"trainer.max_steps={STEPS}", f"trainer.eval_samples={EVAL}", "trainer.save_steps=30",
             f"trainer.learning_rate={LEARNING_RATE}"]


def _run(tmp_path, monkeypatch, shuffle: bool):
    return train_learning_run(tmp_path, monkeypatch, OVERRIDES, shuffle)


def test_default_job_learns(tmp_path, monkeypatch):
    s = _run(tmp_path, monkeypatch, shuffle=False)
    assert s[keys.HELDOUT] >= s[keys.HELDOUT_BEFORE] + 0.20, s  # measured: 56% -> 93%


def test_shuffled_advantages_do_not_learn(tmp_path, monkeypatch):
    s = _run(tmp_path, monkeypatch, shuffle=True)
    assert s[keys.HELDOUT] < s[keys.HELDOUT_BEFORE] + 0.15, s  # measured: 56% -> 59%
