"""Distributed helpers that work on CPU (gloo) as well as CUDA (nccl).

BasicSR's ``init_dist`` assumes CUDA; here the backend follows the device: ``torchrun --nproc_per_node=2
lowlight3d/train.py -opt X.yml --launcher pytorch`` trains on two CPU processes with gloo, or on two GPUs
with nccl.
"""
import os

import torch
import torch.distributed as dist

__all__ = ['init_dist', 'get_dist_info', 'barrier', 'broadcast_object']


def init_dist(launcher, backend=None):
    """Initialise ``torch.distributed`` from the environment a launcher sets.

    Args:
        launcher (str): ``none`` (single process) or ``pytorch`` (torchrun / torch.distributed.launch
            environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
        backend (str, optional): Defaults to ``nccl`` when CUDA is available, else ``gloo``.

    Returns:
        tuple[int, int]: ``(rank, world_size)``.
    """
    if launcher in (None, 'none'):
        return 0, 1
    if launcher != 'pytorch':
        raise ValueError(f"Unsupported launcher '{launcher}': use 'none' or 'pytorch' (torchrun)")
    if 'RANK' not in os.environ or 'WORLD_SIZE' not in os.environ:
        raise RuntimeError('--launcher pytorch needs the RANK/WORLD_SIZE variables that torchrun sets: run '
                           '`torchrun --nproc_per_node=N lowlight3d/train.py -opt X.yml --launcher pytorch`')
    if not dist.is_initialized():
        backend = backend or ('nccl' if torch.cuda.is_available() else 'gloo')
        if backend == 'nccl':
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def get_dist_info():
    """``(rank, world_size)`` of this process; ``(0, 1)`` when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier():
    """Synchronise all processes (no-op when not distributed)."""
    if get_dist_info()[1] > 1:
        dist.barrier()


def broadcast_object(obj, src=0):
    """Broadcast a picklable object from ``src`` to every process (identity when not distributed)."""
    if get_dist_info()[1] == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]
