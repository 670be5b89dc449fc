"""A running sum of named loss terms with their logged values (what every training step builds)."""
from collections import OrderedDict

__all__ = ['LossSum']


class LossSum:
    """Adds loss terms and keeps ``l_<name>`` log values (detached); ``logs()`` appends ``l_total``.

    ``values`` keeps the terms themselves (with their graphs, ``{name: tensor}``), e.g. for
    :meth:`~lowlight3d.models.base_model.BaseModel.grad_norm_logs`.

    Example::

        terms = LossSum()
        terms.add('pixel', l1(out, gt))
        grads = self.grad_norm_logs(current_iter, terms.values, [out])
        self.backward(terms.total)
        self.optimizer_step(optimizer)
        self.log_dict = self.reduce_loss_dict(terms.logs(**grads))
    """

    def __init__(self):
        self.total = 0
        self.values = OrderedDict()
        self._logs = OrderedDict()

    def add(self, name, value):
        """Add ``value`` (a scalar tensor) to the total and log it as ``l_<name>``."""
        self.values[name] = value
        self._logs[f'l_{name}'] = value.detach()
        self.total = self.total + value

    def logs(self, **extra):
        """The logged terms, ``l_total`` and any ``extra`` scalars (e.g. discriminator losses)."""
        out = OrderedDict(self._logs)
        if not isinstance(self.total, int):
            out['l_total'] = self.total.detach()
        out.update(extra)
        return out
