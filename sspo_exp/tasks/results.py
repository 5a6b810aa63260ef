"""What scoring a benchmark returns: one :class:`SampleRecord` per row, gathered in an :class:`EvalResult`
(every task's scorer returns these; ``sspo_exp.evaluation`` writes them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SampleRecord:
    id: str
    prompt: str
    completion: str
    gold: str
    extracted: str | None  #: text inside the last <answer></answer> (None: no such pair)
    correct: bool  #: r_answer == 1 under sspo_exp.rewards.math_reward
    format: float  #: r_format of the completion
    error: str = ""  #: why the sample failed (generation/scoring) or why the answer was refused
    hit_limit: bool = False  #: generation stopped at max_new_tokens (no EOS)
    cut: bool = False  #: hit the limit with no </answer> (rewards.cut_before_answer)


@dataclass
class EvalResult:
    n: int
    n_correct: int
    n_failed: int
    records: list[SampleRecord] = field(default_factory=list)

    @property
    def pass_at_1(self) -> float:
        """Pass@1 in percent (0-100), the paper's unit."""
        return 100.0 * self.n_correct / self.n if self.n else float("nan")

    @property
    def cut_before_answer(self) -> float:
        """Share (0-1) of the samples that hit the generation budget before writing ``</answer>``."""
        return sum(r.cut for r in self.records) / self.n if self.n else float("nan")

    @property
    def accuracy(self) -> float:
        """Pass@1 as a fraction in [0, 1]."""
        return self.n_correct / self.n if self.n else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"pass@1": self.pass_at_1, "n": self.n, "n_correct": self.n_correct, "n_failed": self.n_failed,
                "cut_before_answer": self.cut_before_answer, "samples": [asdict(r) for r in self.records]}
