"""The embedded default learns; the same job with shuffled advantages does not (slow; cold start is cached).

The default job itself (`sspo-exp train`: the composed default config, on one torch thread). The
control permutes the advantages within each rollout: the same update sizes, no credit assignment.
"""

from __future__ import annotations

import pytest
from sspo_exp import keys
from train_helpers import train_learning_run

pytestmark = pytest.mark.slow
STEPS, EVAL = 20, 200  # the default job itself: 20 RL steps (conf/trainer/cpu-fast.yaml), all 200 held-out problems
# (on the first 100 alone the gain was 56% -> 79%: too close to the +20 points asked)
# the default's learning rate (1e-4), stated so a change of the preset cannot silently change this test: 5e-4 made TRL's
# own GRPO and ours collapse the cold-started policy (held-out 51.5% -> 1.0% in 60 steps)
LEARNING_RATE = 1e-4
OVERRIDES = [f"trainer.max_steps={STEPS}", f"trainer.eval_samples={EVAL}", "trainer.save_steps=20",
             f"trainer.learning_rate={LEARNING_RATE}"]


def _run(tmp_path, monkeypatch, shuffle: bool):
    return train_learning_run(tmp_path, monkeypatch, OVERRIDES, shuffle)


def test_default_job_learns(tmp_path, monkeypatch):
    s = _run(tmp_path, monkeypatch, shuffle=False)
    assert s[keys.HELDOUT] >= s[keys.HELDOUT_BEFORE] + 0.20, s  # measured (seed 0, one thread): 48.0% -> 78.5%


def test_shuffled_advantages_do_not_learn(tmp_path, monkeypatch):
    s = _run(tmp_path, monkeypatch, shuffle=True)
    assert s[keys.HELDOUT] < s[keys.HELDOUT_BEFORE] + 0.15, s  # measured (seed 0, one thread): 48.0% -> 24.0%
