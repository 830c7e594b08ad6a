"""Several processes under `accelerate launch`: on one machine, and on two machines simulated on loopback
(two launches of one process each, ranks 0 and 1, a gloo group over 127.0.0.1), one of them killed."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from conftest import ROOT, TINY
from textgan.distributed import LaunchError, Lockstep, PeerLostError, check_launch, first_line, group_kwargs, watch

TIMEOUT = "60"          # the process group's timeout in these tests (seconds): a hang fails fast


def launch_cmd(*textgan_args: str, machines: int = 1, rank: int = 0, port: int = 0) -> list[str]:
    """`accelerate launch` of `textgan ARGS` on 2 processes in all: both on this machine, or one on each of
    `machines` = 2 (this launch is machine `rank`, the group meets at 127.0.0.1:`port`). `--multi_gpu`
    selects the torchrun launcher; without CUDA the processes form a gloo group. The launcher is run as
    `python -m`, so no PATH is needed and nothing is skipped where accelerate is installed. The workers run
    this file as a script: textgan's CLI, with the shards recording of `record_shards`."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--multi_gpu", "--num_processes", "2",
           "--num_machines", str(machines), "--mixed_precision", "no", "--dynamo_backend", "no"]
    if machines > 1:
        cmd += ["--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", str(port)]
    return [*cmd, __file__, *textgan_args]


def record_shards(folder: Path) -> None:
    """In a launched worker: every DomainBatches that training builds appends to FOLDER/shards-RANK.jsonl
    the size of the list it was given and the positions in it of the items it kept (its process's shard),
    so a test sees which data each process trains on, wherever the process index and count come from."""
    from textgan.training import common

    class Recorded(common.DomainBatches):
        def __init__(self, seqs, *args, **kwargs):
            super().__init__(seqs, *args, **kwargs)
            position = {id(item): i for i, item in enumerate(seqs)}
            with open(folder / f"shards-{os.environ['RANK']}.jsonl", "a") as f:
                f.write(json.dumps({"size": len(seqs), "shard": [position[id(item)] for item in self.seqs]}) + "\n")

    common.DomainBatches = Recorded


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TwoMachines:
    """Machines 0 and 1 as two `accelerate launch` process trees of this machine, each with its own log
    (stdout and stderr) under `logs`; `lose(rank)` SIGKILLs one machine's launcher and its workers at once,
    as a host gone."""

    def __init__(self, logs: Path, *textgan_args: str):
        port = free_port()
        logs.mkdir(exist_ok=True)
        launch = len(list(logs.glob("machine0-*.log"))) + 1
        self.logs = [logs / f"machine{rank}-{launch}.log" for rank in (0, 1)]
        self.files = [open(log, "w") for log in self.logs]
        # os.environ now, not at import: it then holds the session's TEXTGAN_CACHE (conftest), so concurrent
        # test sessions do not share ~/.cache/textgan
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "TEXTGAN_TEST_SHARDS": str(logs)}
        self.procs = [subprocess.Popen(launch_cmd(*textgan_args, machines=2, rank=rank, port=port), cwd=ROOT,
                                       env=env, stdout=self.files[rank], stderr=subprocess.STDOUT,
                                       start_new_session=True)
                      for rank in (0, 1)]

    def running(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def lose(self, rank: int) -> None:
        root = psutil.Process(self.procs[rank].pid)
        for proc in [root, *root.children(recursive=True)]:     # torchrun's workers live in their own session
            proc.send_signal(signal.SIGKILL)
        self.procs[rank].wait()

    def wait(self, rank: int, timeout: float) -> tuple[int, str]:
        rc = self.procs[rank].wait(timeout=timeout)
        return rc, self.logs[rank].read_text()

    def close(self) -> None:
        for rank, p in enumerate(self.procs):
            if p.poll() is None:
                self.lose(rank)
        for f in self.files:
            f.close()


@pytest.fixture
def machines(tmp_path):
    """Start two simulated machines with `machines.start(*textgan_args)`; whatever still runs is killed after."""
    started = []

    class Starter:
        @staticmethod
        def start(*textgan_args: str) -> TwoMachines:
            started.append(TwoMachines(tmp_path / "logs", *textgan_args))
            return started[-1]

    yield Starter
    for pair in started:
        pair.close()


def wait_until(condition, what: str, timeout: float = 240, pair: TwoMachines | None = None) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        assert pair is None or pair.running(), f"a machine ended before {what}: " + pair.logs[0].read_text()[-2000:] \
            + pair.logs[1].read_text()[-2000:]
        time.sleep(0.1)


def lost_peer_line(log: str, command: str) -> str:
    """The survivor's one line: `textgan COMMAND: error: lost another process ...`, once, no traceback."""
    lines = [line for line in log.splitlines() if f"textgan {command}: error:" in line]
    assert len(lines) == 1 and "lost another process of the group" in lines[0], log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    return lines[0]


def corpus_file(path: Path, lines: int) -> Path:
    words = "the food was good bad cold and staff friendly rude".split()
    path.write_text("".join(" ".join(words[(i * 7 + j) % len(words)] for j in range(1 + i % 9)) + "\n"
                            for i in range(lines)))
    return path


def shards(logs: Path) -> list[tuple[dict, dict]]:
    """(machine 0's, machine 1's) record of each DomainBatches their launches built, in order (`record_shards`)."""
    rows = [[json.loads(line) for line in (logs / f"shards-{rank}.jsonl").read_text().splitlines()] for rank in (0, 1)]
    assert len(rows[0]) == len(rows[1]) and rows[0], rows
    return list(zip(*rows))


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor a run saved for inference: generator(s) and discriminator."""
    from safetensors.torch import load_file

    files = sorted(run_dir.glob("generator*/*.safetensors")) + [run_dir / "discriminator.safetensors"]
    assert len(files) > 1, files
    return {f"{f.relative_to(run_dir)}:{k}": v for f in files for k, v in load_file(f).items()}


@pytest.mark.slow
def test_two_machines_train_then_lose_one_and_resume(machines, tmp_path):
    """Two machines train one run, each process on its own half of every domain's sentences (their shards
    are disjoint and cover the data); machine 1 is SIGKILLed after the first checkpoint: machine 0 stops
    within seconds with one line naming the kept checkpoint, and both relaunched with --resume continue at
    that step and save one run (2 processes) that loads and transfers, with the very weights of the same run
    trained by two machines without a loss (bit for bit: the processes start from the same weights, the
    step, weights, moments, schedules, RNG states and batch streams are restored, the noise is seeded per
    step, and a sum of two gradients does not depend on their order). (It stands for the one-machine
    launch of 2 processes too, `accelerate launch --multi_gpu --num_processes 2 -m textgan train`: the
    same group of 2 formed by torchrun, the same textgan code.)"""
    runs = tmp_path / "runs"
    run_dir = runs / "toy" / "two"
    steps = ["train.ae_steps=50", "train.ckpt_every=10", f"train.dist_timeout={TIMEOUT}"]
    whole = machines.start("train", "--task", "toy", "--runs-dir", str(tmp_path / "whole"), "--name", "whole",
                           *TINY, *steps)
    (rc0, log0), (rc1, log1) = whole.wait(0, timeout=600), whole.wait(1, timeout=120)
    assert rc0 == 0 and rc1 == 0, log0[-3000:] + log1[-3000:]
    for mine, other in shards(tmp_path / "logs"):
        assert mine["size"] == other["size"] > 1
        assert not set(mine["shard"]) & set(other["shard"]), "both processes train on the same sentences"
        assert sorted(mine["shard"] + other["shard"]) == list(range(mine["size"]))

    pair = machines.start("train", "--task", "toy", "--runs-dir", str(runs), "--name", "two", *TINY, *steps)
    wait_until(lambda: (run_dir / "state").is_dir(), "the first checkpoint", pair=pair)
    time.sleep(1.0)
    assert pair.running(), "the run ended before a machine could be lost"
    pair.lose(1)
    lost = time.time()
    rc, log = pair.wait(0, timeout=120)
    assert rc != 0
    assert time.time() - lost < 60, "the surviving machine took too long to stop"
    line = lost_peer_line(log, "train")
    saved = int(re.search(r"checkpoint of step (\d+)", line).group(1))
    assert saved % 10 == 0 and saved >= 10 and f"--resume {run_dir}" in line

    pair = machines.start("train", "--resume", str(run_dir))
    (rc0, log0), (rc1, log1) = pair.wait(0, timeout=600), pair.wait(1, timeout=120)
    assert rc0 == 0 and rc1 == 0, log0[-3000:] + log1[-3000:]
    total = 50 + 2 + 4                                   # ae + d + adv steps (TINY)
    assert f"resuming {run_dir} at step {saved}/{total}" in log0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == total
    assert json.loads((run_dir / "run.json").read_text())["processes"] == 2
    assert sorted(p.name for p in (runs / "toy").iterdir()) == ["two"]      # one run, not one per machine
    import textgan

    out = textgan.load(run_dir, device="cpu").transfer(["the food was cold ."], to="pos")
    assert len(out) == 1 and isinstance(out[0], str)
    resumed, uninterrupted = weights(run_dir), weights(tmp_path / "whole" / "toy" / "whole")
    assert resumed.keys() == uninterrupted.keys()
    assert [k for k in resumed if not torch.equal(resumed[k], uninterrupted[k])] == []


@pytest.mark.slow
def test_two_machines_convert_then_lose_one_and_finish(machines, trained_run, tmp_path):
    """Two machines convert a file chunk by chunk (each every other chunk); machine 0 (the one that merges)
    is SIGKILLed midway: machine 1 stops with one line, nothing is merged, and both relaunched redo only
    what was left; the merged output is byte-identical to one process's, and no part or record is left.
    (It stands for the one-machine 2-process conversion too: the same group of 2, the same merge.)"""
    from textgan.convert import Job, convert

    src = corpus_file(tmp_path / "in.txt", 800)
    convert(src, tmp_path / "one.txt", trained_run, Job(to="pos", chunk_lines=40), show_progress=False)
    out = tmp_path / "two.txt"
    args = ["convert", str(src), "-o", str(out), "--model", str(trained_run), "--to", "pos", "--chunk-lines", "40",
            "--dist-timeout", TIMEOUT]
    pair = machines.start(*args)
    progress = tmp_path / "two.txt.progress0.json"
    wait_until(lambda: progress.exists() and json.loads(progress.read_text())["next_chunk"] >= 4,
               "machine 0's fourth chunk", pair=pair)
    pair.lose(0)
    lost = time.time()
    rc, log = pair.wait(1, timeout=120)
    assert rc != 0 and time.time() - lost < 60
    assert "run the same command again on every machine" in lost_peer_line(log, "convert")
    assert not out.exists()
    done = sum(json.loads((tmp_path / f"two.txt.progress{r}.json").read_text())["counts"]["lines"] for r in (0, 1))
    assert 0 < done < 800

    pair = machines.start(*args)
    (rc0, log0), (rc1, log1) = pair.wait(0, timeout=600), pair.wait(1, timeout=120)
    assert rc0 == 0 and rc1 == 0, log0[-3000:] + log1[-3000:]
    assert re.search(rf"800 lines \({800 - done} in this run", log0), log0[-2000:]   # only the remainder
    assert out.read_bytes() == (tmp_path / "one.txt").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "logs", "one.txt", "two.txt"]

def test_a_launch_that_leaves_each_machine_alone_is_refused():
    simple = {"ACCELERATE_USE_CPU": "False", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    with pytest.raises(LaunchError, match="add --multi_gpu"):
        check_launch(1, simple)
    check_launch(2, {**simple, "WORLD_SIZE": "2"})            # torchrun formed the group
    check_launch(1, {"ACCELERATE_USE_CPU": "False"})           # accelerate launch of one process
    check_launch(1, {})                                        # plain `textgan train`


def test_a_failed_collective_becomes_one_line_naming_what_is_kept():
    gloo = ("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:17596: Connection "
            "reset by peer. This is typically caused by a remote worker hanging or bugs in the application.")
    assert first_line(RuntimeError(gloo)) == "Read error [127.0.0.1]:17596: Connection reset by peer"
    with pytest.raises(PeerLostError) as caught:
        with watch(2, lambda: "the checkpoint of step 40 is kept"):
            raise torch.distributed.DistBackendError(gloo + "\nmore lines")
    message = str(caught.value)
    assert "\n" not in message and "Connection reset by peer" in message and message.endswith("step 40 is kept")
    with pytest.raises(torch.distributed.DistBackendError):          # one process: nothing to lose
        with watch(1, lambda: ""):
            raise torch.distributed.DistBackendError(gloo)
    with pytest.raises(RuntimeError, match="^a bug$"):               # raised outside torch.distributed
        with watch(2, lambda: ""):
            raise RuntimeError("a bug")
    with pytest.raises(ValueError, match="positive"):
        group_kwargs(0)


def test_lockstep_of_one_process_counts_its_items():
    """With one process the all-reduce is the identity: the rounds end when the announced items are done."""
    from accelerate import PartialState

    steps = Lockstep(PartialState(cpu=True), 2)
    with pytest.raises(RuntimeError, match="never done"):
        steps.finish()
    steps.step()
    steps.step()
    assert steps.total == 0
    with pytest.raises(RuntimeError, match="more items than announced"):
        steps.step()
    steps.finish()


if __name__ == "__main__":          # a worker of `launch_cmd`
    record_shards(Path(os.environ["TEXTGAN_TEST_SHARDS"]))
    from textgan.cli import main

    sys.exit(main())
