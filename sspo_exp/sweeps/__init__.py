"""Sweeps: the paper's grids as Hydra multiruns (``grid``) and Optuna searches (``optuna_cli``)."""
