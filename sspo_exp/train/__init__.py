"""Training: TRL's ``GRPOTrainer`` with our objectives (``trainer``), config checks and TRL's batch fields
(``config``), the run itself with W&B and resume (``run``), and the ``sspo-exp train`` entry point (``cli``)."""
