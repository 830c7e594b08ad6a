"""The processes of one run or conversion, on one machine or several: the process group's timeout, a lost
peer turned into one line, a launch that would leave every machine working alone, and the lockstep that
lets `convert` wait for the others without ever waiting longer than one chunk.

Under `accelerate launch` (torchrun underneath) the processes meet in a process group (gloo on CPU, NCCL
on GPUs) and every collective (a gradient all-reduce, a barrier) waits for all of them. When a peer dies,
its sockets are closed and the others' next collective fails within seconds ("Connection reset by
peer"); when a peer hangs or its machine drops off the network, nothing is closed, and only the process
group's timeout ends the wait. `watch` turns either into `PeerLostError`: one line that says what is kept
and how to go on.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Iterator

DEFAULT_TIMEOUT = 1800          # seconds; torch's own default for gloo (accelerate's for NCCL is 600)


class PeerLostError(RuntimeError):
    """Another process of the group is gone or stopped answering; the message says what is kept."""


class LaunchError(RuntimeError):
    """`accelerate launch` was asked for several processes but started this one alone."""


def group_kwargs(timeout: float) -> dict:
    """The keyword arguments of `init_process_group` (via accelerate's state) that bound every collective."""
    if timeout <= 0:
        raise ValueError(f"the process group's timeout must be positive seconds, got {timeout}")
    return {"timeout": timedelta(seconds=timeout)}


def accelerator_handlers(timeout: float) -> list:
    """`Accelerator(kwargs_handlers=...)` with the process group's timeout."""
    from accelerate.utils import InitProcessGroupKwargs

    return [InitProcessGroupKwargs(**group_kwargs(timeout))]


def check_launch(num_processes: int, environ=os.environ) -> None:
    """Refuse a launch in which every machine would work alone. `accelerate launch --num_processes N` (or
    `--num_machines M`) without `--multi_gpu` on a machine with at most one GPU uses its simple launcher:
    it exports MASTER_ADDR but starts the script as one process of a group of one, so two machines would
    train two separate runs (or convert the same file twice into the same parts)."""
    if num_processes == 1 and "ACCELERATE_USE_CPU" in environ and "MASTER_ADDR" in environ:
        raise LaunchError("accelerate launch was asked for several processes (it set MASTER_ADDR) but started "
                          "this one alone, so each machine would work on its own: add --multi_gpu to "
                          "`accelerate launch` (on CPUs too: it selects the torchrun launcher that forms the group)")


def is_peer_loss(err: BaseException) -> bool:
    """A failed collective: torch.distributed's own errors, or a backend's RuntimeError (gloo raises plain
    ones: "Connection reset by peer", "Timed out waiting ...") raised inside torch.distributed."""
    import torch.distributed as dist

    if isinstance(err, dist.DistError):
        return True
    if not isinstance(err, RuntimeError):
        return False
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"torch{os.sep}distributed{os.sep}" in tb.tb_frame.f_code.co_filename


def first_line(err: BaseException) -> str:
    """The backend's reason, short: gloo's messages start with a source path in brackets and go on for lines."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if text.startswith("[") and "] " in text:
        text = text.split("] ", 1)[1]
    return text.split(". This is typically")[0]


@contextmanager
def watch(num_processes: int, what_is_kept: Callable[[], str]) -> Iterator[None]:
    """Inside: a failed collective of a group of several processes becomes PeerLostError, one line naming
    the reason and `what_is_kept()` (evaluated then: the last checkpoint, the finished chunks)."""
    try:
        yield
    except Exception as err:
        if num_processes > 1 and is_peer_loss(err):
            raise PeerLostError(f"lost another process of the group ({first_line(err)}): a machine or process "
                                f"stopped; {what_is_kept()}") from err
        raise


def same_weights(module) -> None:
    """Give every process the main process's weights (parameters and buffers), as DDP does when it wraps a
    model: the trainer averages gradients itself, without DDP. The processes' inits differ (before the
    models are built the main process alone draws from the RNG: it trains the style classifier, for one),
    so without this each process trained its own model under the averaged gradients, the run saved
    process 0's, and a resumed run (every process loading that one) went another way than the
    uninterrupted run."""
    import torch
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


class Lockstep:
    """Processes with unequal numbers of work items (convert's chunks) go through them together: after each
    item every process all-reduces how many it has left, and one that has none left keeps joining those
    rounds until the sum is 0. So no process waits at a collective for longer than one item of another,
    however unequal the shares, and the process group's timeout only has to exceed one item's time."""

    def __init__(self, state, items_left: int):
        self.state, self.left, self.total = state, items_left, None

    def _round(self) -> None:
        import torch
        from accelerate.utils import reduce

        self.total = int(reduce(torch.tensor([self.left], device=self.state.device), reduction="sum").item())

    def step(self) -> None:
        """After one item of this process."""
        if self.left <= 0:
            raise RuntimeError("Lockstep.step: more items than announced")
        self.left -= 1
        self._round()

    def finish(self) -> None:
        """After this process's last item: the rounds the others still need, then every process is done."""
        if self.left:
            raise RuntimeError(f"Lockstep.finish: {self.left} announced item(s) never done")
        while self.total != 0:
            self._round()
