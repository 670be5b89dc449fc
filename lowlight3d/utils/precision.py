"""Mixed precision and memory format of a training run: ``train.amp`` and ``train.channels_last``.

* ``train.amp: off`` (default) runs float32. ``bf16``: ``torch.autocast`` with bfloat16, on CUDA devices that
  support it and on CPUs with native bf16 instructions (AVX512-BF16 / AMX); on a CPU without them it falls back to
  float32 with one log line (bf16 emulated in software is slower than float32). ``fp16``: autocast with float16
  and a ``GradScaler``, CUDA only (a CPU has no fast float16 and fp16 without loss scaling underflows).
* ``train.channels_last: true`` stores the networks' 4-D weights and the batches' images in NHWC order, which
  oneDNN's (CPU) and cuDNN's (tensor core) convolutions run fastest, bf16 even more so.

What stays float32: parameters, gradients, optimiser states and EMA copies (autocast only changes the dtype of
the activations of listed ops), the loss terms (:meth:`MixedPrecision.backward` casts the total and runs the
backward pass outside autocast), and checkpoints (written contiguous, float32). Resume is exact: the GradScaler's
state (fp16) travels in the training state.
"""
import contextlib
import functools
import logging

import torch

from lowlight3d.utils.logger import LOGGER_NAME

__all__ = ['AMP_MODES', 'MAX_NONFINITE_ITERATIONS', 'MixedPrecision', 'cpu_has_native_bf16', 'parse_amp']

AMP_MODES = ('off', 'bf16', 'fp16')
_CPU_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16():
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX-BF16); False when unknown.

    Reads the instruction-set flags of ``/proc/cpuinfo`` (Linux), else asks torch's own check; once per process.
    """
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    flags = set(line.split(':', 1)[1].split())
                    return any(flag in flags for flag in _CPU_BF16_FLAGS)
    except OSError:
        pass
    checker = getattr(getattr(torch, 'cpu', None), '_is_avx512_bf16_supported', None)
    try:
        return bool(checker()) if callable(checker) else False
    except Exception:  # a private torch helper: absent or failing means unknown, so float32
        return False


def parse_amp(value, where='train.amp'):
    """``train.amp`` as one of :data:`AMP_MODES`. YAML reads a bare ``off`` as ``False``; both mean float32.

    Raises:
        ValueError: Any other value (``true`` included: say which half type).
    """
    if value is None or value is False:
        return 'off'
    if isinstance(value, str) and value.lower() in AMP_MODES:
        return value.lower()
    raise ValueError(f'{where} must be one of off | bf16 | fp16 (bf16: bfloat16 autocast on CUDA or a CPU with '
                     f'native bf16; fp16: float16 autocast with loss scaling, CUDA only), got {value!r}')


#: Consecutive iterations with a non-finite loss after which training stops (:meth:`MixedPrecision.update`).
MAX_NONFINITE_ITERATIONS = 10


class MixedPrecision:
    """Autocast, loss scaling and memory format of one training run, from ``train.amp`` / ``train.channels_last``.

    Args:
        amp (str | bool | None): ``train.amp`` (see :func:`parse_amp`).
        channels_last (bool): ``train.channels_last``.
        device (torch.device): The device the model trains on.
        logger (logging.Logger, optional): Receives the one line of a bf16 fallback.
        native_bf16 (bool, optional): Override the CPU check (tests).

    Attributes:
        requested (str): The mode asked for. mode (str): The mode in force (``off`` after a fallback).
        dtype (torch.dtype | None): The autocast dtype (None for float32).
        channels_last (bool): Whether networks and batches are NHWC.
    """

    def __init__(self, amp='off', channels_last=False, device=torch.device('cpu'), logger=None, native_bf16=None):
        self.device = torch.device(device)
        self.requested = parse_amp(amp)
        if not isinstance(channels_last, bool):
            raise ValueError(f'train.channels_last must be true or false, got {channels_last!r}')
        self.channels_last = channels_last
        self.mode = self.requested
        kind = self.device.type
        if self.mode == 'fp16' and kind != 'cuda':
            raise ValueError(f'train.amp: fp16 needs a CUDA device (this run trains on {kind}): float16 autocast '
                             'with loss scaling is a GPU feature. On a CPU use train.amp: bf16 (fast on CPUs with '
                             'AVX512-BF16/AMX) or off.')
        if self.mode == 'bf16' and kind == 'cuda' and not torch.cuda.is_bf16_supported():
            raise ValueError('train.amp: bf16 is not supported by this CUDA device (torch.cuda.is_bf16_supported() '
                             'is False, e.g. before Ampere): use train.amp: fp16 or off')
        if self.mode == 'bf16' and kind not in ('cuda', 'cpu'):
            raise ValueError(f'train.amp: bf16 is supported on cuda and cpu devices, not on {kind}: use off')
        if self.mode == 'bf16' and kind == 'cpu':
            native = cpu_has_native_bf16() if native_bf16 is None else native_bf16
            if not native:
                self.mode = 'off'
                (logger or logging.getLogger(LOGGER_NAME)).info(
                    'train.amp: bf16 asked for, but this CPU has no native bf16 (no avx512_bf16/amx_bf16 flag): '
                    'training in float32')
        self.dtype = {'off': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[self.mode]
        self.scaler = torch.amp.GradScaler('cuda') if self.mode == 'fp16' else None
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        self._pending_nonfinite = False  # a non-finite loss since the last step: skip that step
        self._iteration_nonfinite = False
        self.nonfinite_streak = 0  # consecutive iterations with a non-finite loss

    @classmethod
    def from_options(cls, opt, device, logger=None):
        """The precision of a run from its resolved options (``train.amp``, ``train.channels_last``); test runs
        (``is_train: false``) are float32 and contiguous: their models are scored, not trained."""
        train = (opt.get('train') or {}) if opt.get('is_train') else {}
        return cls(train.get('amp', 'off'), train.get('channels_last', False), device, logger)

    def describe(self):
        """One line for the log: the mode in force and the memory format."""
        mode = {'off': 'float32', 'bf16': 'bf16 autocast', 'fp16': 'fp16 autocast + GradScaler'}[self.mode]
        if self.mode != self.requested:
            mode += f' ({self.requested} asked for, not available here)'
        return f"precision: {mode}, memory format: {'channels_last' if self.channels_last else 'contiguous'}"

    def autocast(self):
        """The autocast context of a training step (a no-op context for float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def prepare_network(self, net):
        """``net`` in the run's memory format (in place for modules; returned for chaining)."""
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        return net

    def prepare_batch(self, data):
        """A batch dict whose 4-D float tensors are in the run's memory format (others untouched)."""
        if not self.channels_last:
            return data
        return {k: v.contiguous(memory_format=torch.channels_last)
                if torch.is_tensor(v) and v.dim() == 4 and v.is_floating_point() else v for k, v in data.items()}

    def backward(self, loss, **kwargs):
        """``loss.backward()`` in float32 outside autocast, scaled by the GradScaler for fp16.

        Without fp16 (whose GradScaler already skips overflowing steps) a NaN or infinite loss is not
        back-propagated: the next :meth:`step` is skipped with a warning, and :meth:`update` stops the run after
        :data:`MAX_NONFINITE_ITERATIONS` such iterations in a row (a NaN reaching the weights would silently ruin
        every later iteration).
        """
        loss = loss.float()
        if self.scaler is None and not bool(torch.isfinite(loss.detach()).all()):
            self._pending_nonfinite = self._iteration_nonfinite = True
            return
        with torch.autocast(self.device.type, enabled=False):
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward(**kwargs)

    def unscale(self, optimizer):
        """Bring ``optimizer``'s gradients to their true scale (before clipping them); a no-op without fp16."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer):
        """``optimizer.step()``, skipped by the GradScaler when fp16 gradients overflowed, and skipped (its
        gradients dropped) after a non-finite loss (:meth:`backward`)."""
        if self._pending_nonfinite:
            self._pending_nonfinite = False
            optimizer.zero_grad(set_to_none=True)
            self.logger.warning('non-finite (NaN/inf) loss: this optimizer step is skipped')
            return
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self):
        """End of an iteration: the GradScaler adapts its scale (fp16 only); a run whose loss has been
        non-finite for :data:`MAX_NONFINITE_ITERATIONS` iterations in a row stops with ``FloatingPointError``."""
        if self.scaler is not None:
            self.scaler.update()
        self.nonfinite_streak = self.nonfinite_streak + 1 if self._iteration_nonfinite else 0
        self._iteration_nonfinite = self._pending_nonfinite = False
        if self.nonfinite_streak >= MAX_NONFINITE_ITERATIONS:
            raise FloatingPointError(
                f'the training loss was NaN or infinite in {self.nonfinite_streak} iterations in a row (their steps '
                f'were skipped; precision {self.mode}): the run diverged. Resume from the last checkpoint with a '
                'lower learning rate, or with --cfg-options train.amp=off to rule out reduced precision, and look '
                'at the loss terms in the log to see which one broke.')

    def state_dict(self):
        """What an exact resume needs: the mode and, with fp16, the GradScaler's scale and counters."""
        return {'amp': self.mode, 'channels_last': self.channels_last,
                'scaler': self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, state, logger=None):
        """Restore :meth:`state_dict`; a state of another mode is loaded with a warning (the run continues in
        the mode of its options, so it is not bit-exact)."""
        if not state:
            return
        if state.get('amp') != self.mode:
            (logger or logging.getLogger(LOGGER_NAME)).warning(
                f"The training state was written with train.amp={state.get('amp')}, this run uses {self.mode}: "
                'it continues, but not exactly as the interrupted run would have')
        if self.scaler is not None and state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
