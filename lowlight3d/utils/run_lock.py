"""One run per experiment: a lock file beside the experiment folder for the life of a training run.

``experiments/.<name>.lock`` is created atomically (``O_CREAT | O_EXCL``) before the run touches the folder and
holds the process id, the host and the start time. A second run of the same name is refused with a message naming
the first; a lock left by a process that no longer exists on this host (a run killed with ``kill -9``) is stale:
it is named in the log and taken over. A lock from another host cannot be checked from here and is refused with the
command that removes it. The lock sits beside the folder, not in it, so ``--force`` (which archives the folder)
is covered too.
"""
import json
import os
import os.path as osp
import socket
import time

__all__ = ['ExperimentLockedError', 'RunLock']


class ExperimentLockedError(RuntimeError):
    """Another live run holds the experiment."""


def _alive(pid):
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """The lock of experiment ``name`` under ``experiments_dir``; a context manager.

    Args:
        experiments_dir (str): The folder holding the experiment folders (``<root>/experiments``).
        name (str): The experiment name (one folder name).
        logger (logging.Logger, optional): Receives the line about a stale lock taken over.

    Attributes:
        path (str): The lock file. stale (dict | None): The record of a stale lock that was taken over.
    """

    def __init__(self, experiments_dir, name, logger=None):
        self.path = osp.join(experiments_dir, f'.{name}.lock')
        self.name, self.logger, self.stale, self.held = name, logger, None, False

    def _record(self):
        return {'pid': os.getpid(), 'host': socket.gethostname(), 'started': time.strftime('%Y-%m-%d %H:%M:%S')}

    def _read(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def acquire(self):
        """Take the lock, or raise :class:`ExperimentLockedError` naming the run that holds it."""
        os.makedirs(osp.dirname(self.path), exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read()
                if holder is None:  # unreadable: being written right now, or garbage
                    raise ExperimentLockedError(
                        f'Experiment {self.name!r} is locked by {self.path}, which cannot be read; if no run of '
                        f'this name is active, remove it: rm {self.path}') from None
                here = holder.get('host') == socket.gethostname()
                pid = holder.get('pid')
                if here and isinstance(pid, int) and not _alive(pid):
                    self.stale = holder
                    os.remove(self.path)
                    if self.logger:
                        self.logger.warning(f'Stale lock of experiment {self.name!r} taken over: process {pid} '
                                            f"(started {holder.get('started')}) no longer exists")
                    continue
                where = 'this host' if here else f"host {holder.get('host')!r}"
                hint = '' if here else f'; if it is not running there any more, remove the lock: rm {self.path}'
                raise ExperimentLockedError(
                    f"Experiment {self.name!r} is in use by another run: process {pid} on {where}, started "
                    f"{holder.get('started')} (lock {self.path}). Wait for it to finish, or use another name"
                    f'{hint}.') from None
            with os.fdopen(fd, 'w') as f:
                json.dump(self._record(), f)
            self.held = True
            return self
        raise ExperimentLockedError(f'Experiment {self.name!r}: another run took the stale lock {self.path} first')

    def release(self):
        """Remove the lock if this process holds it."""
        if self.held:
            holder = self._read()
            if holder is None or holder.get('pid') == os.getpid():
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
