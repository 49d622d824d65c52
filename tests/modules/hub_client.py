"""Run huggingface_hub (and PEFT) in a fresh process pointed at a hub, as a user would.

The test suite sets HF_HUB_OFFLINE=1 for itself, and huggingface_hub reads
its endpoint once, at import: a separate process with ``HF_ENDPOINT`` set is
the faithful way to act as a client of a hub on loopback.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

PREAMBLE = """
import json

# Names of the error's class and its bases ([] when the call succeeds).
def error_kinds(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except Exception as exc:
        return [kind.__name__ for kind in type(exc).__mro__]
    return []

result = None
"""
MARK = "HUB-CLIENT-RESULT:"


def run_hub_client(
    code: str,
    *,
    endpoint: str,
    home: Path,
    token: str | None = None,
    timeout: float = 600,
    python: str = sys.executable,
    env: dict | None = None,
):
    """Run ``code`` against the hub at ``endpoint``; returns what it assigned to ``result``.

    ``python`` is the interpreter (another huggingface_hub's, say); ``env`` adds variables.
    """
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGING_FACE", "TRANSFORMERS_"))
    }
    environment.update(
        HF_ENDPOINT=endpoint,
        HF_HUB_OFFLINE="0",
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
    )
    if token is not None:
        environment["HF_TOKEN"] = token
    environment.update(env or {})
    script = PREAMBLE + code + f"\nprint({MARK!r} + json.dumps(result))\n"
    process = subprocess.run(
        [python, "-c", script],
        env=environment,
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if process.returncode != 0:
        raise AssertionError(f"client failed:\n{process.stderr[-4000:]}")
    line = next(line for line in process.stdout.splitlines() if line.startswith(MARK))
    return json.loads(line[len(MARK) :])
