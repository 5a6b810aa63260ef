"""sspo-exp: reproduce Soft Sequence Policy Optimization (arXiv 2602.19327) and its baselines."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("sspo-exp")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0.0.0+unknown"

_HERE = Path(__file__).resolve().parent
#: Hydra's config directory. It ships inside the package, so a wheel install finds it (the checkout's ``conf``
#: is a link to it: one source of truth).
CONF_DIR = _HERE / "conf"
#: The sweep and Optuna search-space files (``sspo-exp sweep table1`` finds ``table1.yaml`` here; ``sweeps/`` in the
#: checkout links here).
SWEEPS_DIR = _HERE / "resources" / "sweeps"
#: The paper's own Table 1 and Table 2 numbers (``reports/paper`` in the checkout links here).
PAPER_DIR = _HERE / "resources" / "paper"
