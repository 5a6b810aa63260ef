"""Reports: the paper's Tables 1-2 and training curves, rebuilt from stored W&B runs (``sspo-exp report``).

sources (offline files via wandb_offline, or wandb.Api) -> frames (runs, history) -> tables / render, curves.
"""

#: ``sspo-exp report --format``: the table files it can write.
FORMATS = ("md", "tex", "csv")
