"""CodeAct on the CPU learns (slow): `sspo-exp train experiment=cpu_codeact` raises the held-out greedy solved rate;
the same job with shuffled advantages does not.

The tiny model is cold-started (sspo_exp/stages/codeact.py) to execute on problems whose first operand is below
60 and mostly to guess on the rest, so before RL it solves about the 41% "below" share (it copies the observation
exactly) and RL has one decision to learn on the rest: run the product in the sandbox instead of guessing.

The control permutes the advantages within each rollout (as tests/test_train_learning.py does): the same episodes,
sandbox, rewards, number and size of updates, only the link between an episode's reward and its own tokens is cut.
So a rise in the learning run and none in the control is credit assignment from the solved reward, not a drift
that any update of that size would cause. (A learning rate of 0 would be a weaker control: it cannot move at all.)
"""

from __future__ import annotations

import pytest
from sspo_exp import keys
from test_codeact import needs_sandbox
from train_helpers import train_learning_run

pytestmark = [pytest.mark.slow, needs_sandbox]
OVERRIDES = ["experiment=cpu_codeact", "trainer.save_steps=20"]  # 20 steps, 100 held-out problems


def _run(tmp_path, monkeypatch, shuffle: bool):
    return train_learning_run(tmp_path, monkeypatch, OVERRIDES, shuffle)


def test_cpu_codeact_learns_to_execute(tmp_path, monkeypatch):
    s = _run(tmp_path, monkeypatch, shuffle=False)
    assert 0.2 <= s[keys.HELDOUT_BEFORE] <= 0.6, s  # the cold start solves its "execute" share, not the rest
    assert s[keys.HELDOUT] >= s[keys.HELDOUT_BEFORE] + 0.20, s  # measured: see docs/codeact.md


def test_cpu_codeact_shuffled_advantages_do_not_learn(tmp_path, monkeypatch):
    s = _run(tmp_path, monkeypatch, shuffle=True)
    assert s[keys.HELDOUT] < s[keys.HELDOUT_BEFORE] + 0.10, s  # measured: see docs/codeact.md
