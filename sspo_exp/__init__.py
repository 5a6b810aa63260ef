"""sspo-exp: reproduce Soft Sequence Policy Optimization (arXiv 2602.19327) and its baselines."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository's Hydra config directory (``conf/`` beside the package; the project is installed editable).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
