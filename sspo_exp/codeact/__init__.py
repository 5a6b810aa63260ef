"""CodeAct (Wang et al., 2024, "Executable Code Actions Elicit Better LLM Agents") as an RL environment.

The policy writes Python as an action (``env.action_format``: M3ToolEval's ``Action: … End Action`` or the tags
``<execute>…</execute>``); the environment runs it in one sandbox per episode (``sspo_exp.sandbox``: later cells see
earlier variables) and returns the output as an observation turn; the episode ends at the answer (``Answer: …`` /
``<solution>…</solution>``), at a turn without an action, at ``max_turns`` or when the token budget is spent.

* :mod:`~sspo_exp.codeact.format`: the action formats (stop strings, parsing of one policy turn, prompt text,
  messages), the format reward; :mod:`~sspo_exp.codeact.upstream`: M3ToolEval's format, ported from its harness.
* :mod:`~sspo_exp.codeact.episode`: the multi-turn loop over token ids (policy tokens mask 1, observations 0).
* :mod:`~sspo_exp.codeact.policy`: sampling one turn from an HF model or vLLM (stops at the format's stop strings).
* :mod:`~sspo_exp.codeact.checkers`: "solved" = the final answer passes the task's checker.
* :mod:`~sspo_exp.codeact.rollout`: TRL 1.16's ``rollout_func`` and the reward functions (training).
* :mod:`~sspo_exp.tasks.codeact`: the ``codeact`` benchmark's solved rate (greedy, same loop).

Design choices and what was verified: ``docs/codeact.md``.
"""
