"""What produced a result, and how its log reaches the user: the commit of the code, the machine, and
stdout written line by line.

Every run (checkpoint.write_run_info) and every benchmark's results folder records the commit; a tree
with uncommitted changes to tracked files is marked, since the sha alone would name other code.
"""

from __future__ import annotations

import platform
import subprocess
import sys

from .corpora import PROJECT_ROOT


def commit(short: bool = False) -> str:
    """The checked-out commit: the full sha with "-dirty" (run.json), or `short` the 7-character sha with
    "+uncommitted" (results READMEs), when tracked files have uncommitted changes; "unknown" outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    sha = out.stdout.strip()
    if short:
        return sha[:7] + ("+uncommitted" if dirty else "")
    return sha + ("-dirty" if dirty else "")


def machine() -> str:
    """The device results are measured on, in words: the GPU's name, or the CPU and torch's threads."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"{torch.get_num_threads()} CPU threads ({cpu}), no GPU, torch {torch.__version__}"


def line_buffered_stdout() -> None:
    """Every line printed reaches a redirected log as it happens (`textgan train > train.log`, nohup): Python
    buffers stdout in 8 KiB blocks when it is not a terminal, so progress lines written with print or
    tqdm.write would otherwise show up minutes late, all at once (stderr, where the bars go, is line
    buffered already)."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
