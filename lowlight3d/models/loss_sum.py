"""A running sum of named loss terms with their logged values (what every training step builds)."""
from collections import OrderedDict

__all__ = ['LossSum']


class LossSum:
    """Adds loss terms and keeps ``l_<name>`` log values (detached); ``logs()`` appends ``l_total``.

    Example::

        terms = LossSum()
        terms.add('pixel', l1(out, gt))
        terms.total.backward()
        self.log_dict = self.reduce_loss_dict(terms.logs())
    """

    def __init__(self):
        self.total = 0
        self._logs = OrderedDict()

    def add(self, name, value):
        """Add ``value`` (a scalar tensor) to the total and log it as ``l_<name>``."""
        self._logs[f'l_{name}'] = value.detach()
        self.total = self.total + value

    def logs(self, **extra):
        """The logged terms, ``l_total`` and any ``extra`` scalars (e.g. discriminator losses)."""
        out = OrderedDict(self._logs)
        if not isinstance(self.total, int):
            out['l_total'] = self.total.detach()
        out.update(extra)
        return out
