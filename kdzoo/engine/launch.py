"""Starting one process per device: locally with ``--num-gpus N``, or under torchrun.

With ``MODEL.DEVICE cpu`` the same flags start N CPU processes that talk over Gloo, which is how
the distributed code paths are tested without a GPU.
"""

import gc
import logging
import os
import signal
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

DEFAULT_TIMEOUT = timedelta(minutes=30)
INTERRUPT_GRACE_SECONDS = 10


def _find_free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or (
        "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ and "RANK" in os.environ
    )


def launch(
    main_func: Callable,
    num_processes_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str = "auto",
    backend: str = "gloo",
    args: tuple = (),
) -> None:
    """Run ``main_func(*args)`` in every process of the job.

    Under torchrun (its environment variables set) this process is already one of the job: the
    process group is initialised from the environment. Otherwise, ``num_machines *
    num_processes_per_machine > 1`` spawns the local processes; a single process runs directly.
    ``backend`` is ``"nccl"`` for GPUs and ``"gloo"`` for CPUs.
    """
    if launched_by_torchrun():
        dist.init_process_group(backend=backend, timeout=DEFAULT_TIMEOUT)
        _set_device(backend, int(os.environ["LOCAL_RANK"]))
        _run_then_destroy_process_group(main_func, args)
        return
    world_size = num_machines * num_processes_per_machine
    if world_size == 1:
        main_func(*args)
        return
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("--dist-url auto only works on one machine; give tcp://HOST:PORT")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    context = mp.start_processes(
        _distributed_worker,
        nprocs=num_processes_per_machine,
        args=(
            main_func,
            world_size,
            num_processes_per_machine,
            machine_rank,
            dist_url,
            backend,
            args,
        ),
        join=False,
        daemon=False,
        start_method="spawn",
    )
    try:
        while not context.join():
            pass
    except KeyboardInterrupt:
        _interrupt(context.processes)
        raise


def _interrupt(processes: list) -> None:
    """Stop every local process after this one was interrupted (Ctrl-C reaches them all from a
    terminal; ``kill -INT`` reaches this one alone). SIGINT first, so each stops as Ctrl-C would
    stop it; SIGTERM for one stuck in a collective whose peer has already gone."""
    alive = [p for p in processes if p.is_alive()]
    for process in alive:
        os.kill(process.pid, signal.SIGINT)
    for process in alive:
        process.join(timeout=INTERRUPT_GRACE_SECONDS)
        if process.is_alive():
            process.terminate()
            process.join()


def _set_device(backend: str, local_rank: int) -> None:
    if backend == "nccl":
        torch.cuda.set_device(local_rank)


def _distributed_worker(
    local_rank: int,
    main_func: Callable,
    world_size: int,
    num_processes_per_machine: int,
    machine_rank: int,
    dist_url: str,
    backend: str,
    args: tuple,
) -> None:
    rank = machine_rank * num_processes_per_machine + local_rank
    os.environ["LOCAL_RANK"] = str(local_rank)
    if "OMP_NUM_THREADS" not in os.environ:
        # Each process would otherwise start one thread per core, oversubscribing the machine
        # N-fold; share the cores out instead (torchrun sets 1 thread per process).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_processes_per_machine))
    try:
        dist.init_process_group(
            backend=backend,
            init_method=dist_url,
            world_size=world_size,
            rank=rank,
            timeout=DEFAULT_TIMEOUT,
        )
    except Exception:
        logging.getLogger("kdzoo").error(f"Process group URL: {dist_url}")
        raise
    _set_device(backend, local_rank)
    dist.barrier()
    _run_then_destroy_process_group(main_func, args)


def _run_then_destroy_process_group(main_func: Callable, args: tuple) -> None:
    try:
        main_func(*args)
    finally:
        # A finished Trainer sits in reference cycles that keep its DDP module, and through it the
        # process group, alive after main_func returns. Collect them first so the group is torn
        # down here, with the interpreter whole: left to interpreter exit, Gloo's threads
        # sometimes abort the process ("terminate called without an active exception", SIGABRT)
        # after a run that finished.
        gc.collect()
        dist.destroy_process_group()
