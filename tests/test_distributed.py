import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, TINY


@pytest.mark.slow
def test_two_process_cpu_run_under_accelerate_launch(tmp_path):
    """`accelerate launch -m textgan train` runs data-parallel on 2 CPU processes and saves one run."""
    launcher = shutil.which("accelerate") or pytest.skip("accelerate CLI not on PATH")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --multi_gpu selects the torchrun launcher; without CUDA the processes form a gloo (CPU) group.
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "textgan", "train", "--task", "toy", "--runs-dir", str(tmp_path),
           "--name", "ddp", *TINY]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = tmp_path / "toy" / "ddp"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["processes"] == 2
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 10
    assert (run_dir / "generator").is_dir()
    assert sorted(p.name for p in (tmp_path / "toy").iterdir()) == ["ddp"]   # one run dir, not one per process


@pytest.mark.slow
def test_two_process_convert_shards_chunks_and_merges_in_order(trained_run, tmp_path):
    """Under `accelerate launch` each process converts every other chunk; the merged file is byte-identical
    to a one-process conversion."""
    launcher = shutil.which("accelerate") or pytest.skip("accelerate CLI not on PATH")
    words = "the food was good bad cold and staff friendly rude".split()
    src = tmp_path / "in.txt"
    src.write_text("".join(" ".join(words[(i * 7 + j) % len(words)] for j in range(1 + i % 9)) + "\n"
                           for i in range(95)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["convert", str(src), "--model", str(trained_run), "--to", "pos", "--quiet", "--chunk-lines", "10"]
    subprocess.run([sys.executable, "-m", "textgan", *args, "-o", str(tmp_path / "one.txt")], cwd=ROOT, env=env,
                   check=True, timeout=300)
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "textgan", *args, "-o", str(tmp_path / "two.txt")]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "two.txt").read_bytes() == (tmp_path / "one.txt").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "one.txt", "two.txt"]
