"""Cold starts as stages: what a run's initial policy is built from, each a cached, once-per-key stage.

Floors, bottom up: ``spec`` (torch-free: which cold start a config asks for, its id and key; ``make_plan`` calls it),
``cache`` (the once-per-key, atomic stage cache), ``targets`` (the tiny task's demonstrations), ``tiny`` / ``sft`` /
``codeact`` (the three cold starts), ``policy`` (``cold_started_path``, ``load_policy``: what training loads).
``sspo-exp cold-start`` (``sspo_exp.train.cold_start_cli``) builds a config's stage as a job of its own.
"""
