"""Logging set-up shared by train.py and test.py (one logger, the one BasicSR code logs to)."""
import logging
import os
import os.path as osp
import platform
import subprocess

__all__ = ['setup_logger', 'environment_info', 'RecordBuffer', 'buffer_logger']

LOGGER_NAME = 'basicsr'  # BasicSR's get_root_logger() returns this same logger, so its messages land in our file
_FORMAT = '%(asctime)s %(levelname)s: %(message)s'


class RecordBuffer(logging.Handler):
    """Keeps the records logged before the run's log file exists (the folder is created only once the run has
    been validated and built), so that :func:`setup_logger` can write them into the file afterwards."""

    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        """Keep ``record``."""
        self.records.append(record)


def buffer_logger(rank=0, level=logging.INFO):
    """Console logging now, and a :class:`RecordBuffer` to replay into the log file later (``setup_logger(...,
    replay=buffer)``)."""
    logger = setup_logger(None, rank, level)
    buffer = RecordBuffer()
    logger.addHandler(buffer)
    return buffer


def setup_logger(log_file=None, rank=0, level=logging.INFO, replay=None):
    """(Re)configure the root logger of the run: console on rank 0, plus ``log_file`` if given.

    Safe to call once per run in the same process (tests run several): old handlers are replaced.

    Args:
        log_file (str, optional): File receiving the log (rank 0 only).
        rank (int): Process rank; other ranks log errors only.
        level (int): Logging level on rank 0.
        replay (RecordBuffer, optional): Records logged earlier (see :func:`buffer_logger`), written to the file.

    Returns:
        logging.Logger: The configured logger.
    """
    from basicsr.utils import logger as bsr_logger
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = False
    stream = logging.StreamHandler()
    stream.setFormatter(logging.Formatter(_FORMAT))
    logger.addHandler(stream)
    if rank != 0:
        logger.setLevel(logging.ERROR)
    else:
        logger.setLevel(level)
        if log_file:
            os.makedirs(osp.dirname(osp.abspath(log_file)), exist_ok=True)
            file_handler = logging.FileHandler(log_file, 'a')
            file_handler.setFormatter(logging.Formatter(_FORMAT))
            logger.addHandler(file_handler)
            for record in (replay.records if replay is not None else []):
                file_handler.handle(record)
    bsr_logger.initialized_logger[LOGGER_NAME] = True
    return logger


def environment_info():
    """Versions of Python and the key packages, the device, and the git commit of the working tree."""
    import basicsr
    import numpy
    import torch
    import torchvision

    from lowlight3d.version import __version__
    try:
        sha = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, timeout=5,
                             cwd=osp.dirname(osp.abspath(__file__))).stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError):
        sha = 'unknown'
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f'CPU ({os.cpu_count()} cores)'
    return (f'lowlight3d {__version__} (git {sha}) | Python {platform.python_version()} | torch {torch.__version__} | '
            f'torchvision {torchvision.__version__} | basicsr {basicsr.__version__} | numpy {numpy.__version__} | '
            f'device {device} | torch threads {torch.get_num_threads()} (results depend on it; option num_threads) | '
            f'deterministic algorithms {torch.are_deterministic_algorithms_enabled()}')
