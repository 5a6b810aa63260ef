"""verl's own policy-loss unit tests (shipped in its wheel as ``tests/trainer/ppo``) with our losses registered, in a
process that imported nothing but verl: the ``verl.plugins`` entry point alone must register them."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from verl_helpers import needs_verl

pytestmark = [pytest.mark.verl, needs_verl]

#: verl 0.9.1's CPU tests of the policy losses and their aggregation (the other files of tests/trainer/ppo test
#: advantage estimators, rollout correction and metrics, or need packages verl does not install, e.g. cachetools).
UPSTREAM = ("test_core_algos_on_cpu.py", "test_dynamic_policy_losses_on_cpu.py", "test_loss_aggregation_on_cpu.py")

SCRIPT = """
import sys, pathlib
import verl                                   # loads the verl.plugins entry points, as in every verl process
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY
assert "sspo_exp.integrations.verl" in sys.modules, "the verl.plugins entry point was not loaded"
print("registered:", sorted(k for k in POLICY_LOSS_REGISTRY if k.startswith("sspo")))
import pytest
root = pathlib.Path(sys.argv[1])
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", str(root), *[str(root / "trainer/ppo" / f) for f in sys.argv[2:]]]))
"""


def test_entry_point_is_declared():
    eps = {ep.name: ep.value for ep in metadata.entry_points(group="verl.plugins")}
    assert eps.get("sspo") == "sspo_exp.integrations.verl"


def test_verls_policy_loss_tests_pass_with_sspo_registered(tmp_path):
    shipped = [f for f in metadata.files("verl") if str(f).startswith("tests/trainer/ppo/")]
    if not shipped:
        pytest.skip("this verl wheel ships no tests/trainer/ppo")
    root = shipped[0].locate().parents[2]  # site-packages/tests
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(root), *UPSTREAM], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "registered: ['sspo', 'sspo_atanlog', 'sspo_expatan', 'sspo_expsig', 'sspo_gumbel', 'sspo_siglog']" in out.stdout
    assert " passed" in out.stdout and "failed" not in out.stdout
    print(out.stdout.splitlines()[-1])
