"""ONNX export of a model file's network with dynamic batch, height and width, and its onnxruntime parity check.

What is exported is the test network's forward pass (PyTorch's TorchScript-based exporter, opset 17; the newer
``dynamo`` exporter needs ``onnxscript``, which the toolkit does not install):

* plain enhancers (LowLightUNet, the baselines' networks): ``input (N, 3, H, W) -> output (N, 3, H, W)``;
* our method: the enhancer with the 3D prior maps as extra inputs ``T1, T2, T3, D1, D2, D3`` (each
  ``(N, C, h, w)``, any size); the prior itself (a DDIM loop with per-image seeded noise, then the tri-plane
  renderer's ray marching) stays in PyTorch: compute the maps with :meth:`LoadedModel.context` or the
  :class:`~lowlight3d.models.prior_extractor.PriorExtractor` and feed them;
* **not exportable**: per-image optimisation (ZERO-IG with ``test_opt.steps > 0``: the result is the outcome of
  Adam steps with autograd on the test image; its plain forward, ``steps = 0``, exports) and any network whose
  forward the exporter rejects (reported with the exporter's message).

:func:`onnx_parity` runs the graph with onnxruntime (CPU) and PyTorch on random inputs at sizes other than the
export size (which proves the dynamic axes) and returns the largest absolute difference.
"""
import os
import os.path as osp

import numpy as np
import torch

from lowlight3d.archs.prior_maps import prior_maps

__all__ = ['OnnxExportError', 'export_onnx', 'onnx_parity', 'onnx_inputs']


class OnnxExportError(RuntimeError):
    """The method cannot be exported to ONNX; the message says why."""


class _PriorInputs(torch.nn.Module):
    """Wraps a prior-guided enhancer so its prior maps are plain tensor inputs."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t1, t2, t3, d1, d2, d3):
        """``net(x, prior_maps([t1, t2, t3], [d1, d2, d3]))``."""
        return self.net(x, prior_maps([t1, t2, t3], [d1, d2, d3]))


def onnx_inputs(model, height=64, width=64, batch=1, seed=0):
    """Example inputs ``{name: np.ndarray}`` for a loaded model's ONNX graph (random low-light values)."""
    gen = torch.Generator().manual_seed(seed)
    inputs = {'input': torch.rand(batch, 3, height, width, generator=gen) * 0.3}
    if model.uses_prior:
        net = model.network
        r = model.prior.renderer.resolution if hasattr(model.prior.renderer, 'resolution') else 32
        for k in range(3):
            side = max(1, r // 2**k)
            inputs[f'T{k + 1}'] = torch.rand(batch, net.prior_image_channels, side, side, generator=gen)
        for k in range(3):
            side = max(1, r // 2**k)
            inputs[f'D{k + 1}'] = torch.rand(batch, net.prior_depth_channels, side, side, generator=gen)
    return inputs


def export_onnx(model, path, height=64, width=64, opset=17):
    """Export a :class:`~lowlight3d.inference.loaded_model.LoadedModel`'s network to ``path``.

    Returns:
        dict: ``inputs`` (names), ``outputs``, ``path``.

    Raises:
        OnnxExportError: Per-image optimisation, or the exporter failed (its message included).
    """
    if model.per_image_steps:
        raise OnnxExportError(f'{model.name}: per-image optimisation ({model.per_image_steps} Adam steps with autograd '
                              'on each image) cannot be expressed as an ONNX graph; export it with test_opt.steps=0 '
                              'for the plain forward pass')
    net = model.network.eval().to('cpu')
    inputs = onnx_inputs(model, height, width)
    module = _PriorInputs(net) if model.uses_prior else net
    names = list(inputs)
    dynamic = {name: {0: 'batch', 2: f'{name}_height', 3: f'{name}_width'} for name in names}
    dynamic['input'] = {0: 'batch', 2: 'height', 3: 'width'}
    dynamic['output'] = {0: 'batch', 2: 'height', 3: 'width'}
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    import warnings
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(module, tuple(inputs[n] for n in names), path, input_names=names,
                              output_names=['output'], dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    except Exception as err:  # the exporter raises many types; all mean "this forward cannot be exported"
        text = str(err).splitlines()[0][:300] if str(err) else ''
        raise OnnxExportError(f'{model.name}: torch.onnx.export failed: {type(err).__name__}: {text}') from None
    finally:
        model.network.to(model.device)
    return {'inputs': names, 'outputs': ['output'], 'path': path}


def onnx_parity(model, path, sizes=((48, 80), (96, 64))):
    """Largest ``|onnxruntime - PyTorch|`` over random inputs at ``sizes`` (CPU, float32).

    Returns:
        dict: ``{'max_abs': float, 'sizes': [...], 'per_size': [float, ...]}``.
    """
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    net = model.network.eval().to('cpu')
    per_size = []
    for h, w in sizes:
        inputs = onnx_inputs(model, h, w, seed=h * 1000 + w)
        with torch.no_grad():
            if model.uses_prior:
                ref = net(inputs['input'], prior_maps([inputs[f'T{k}'] for k in (1, 2, 3)],
                                                      [inputs[f'D{k}'] for k in (1, 2, 3)]))
            else:
                ref = net(inputs['input'])
        got = session.run(['output'], {n: inputs[n].numpy() for n in names})[0]
        if got.shape != tuple(ref.shape):
            raise OnnxExportError(f'{path}: ONNX output shape {got.shape} != PyTorch {tuple(ref.shape)} at {h}x{w}')
        per_size.append(float(np.abs(got - ref.numpy()).max()))
    model.network.to(model.device)
    return {'max_abs': max(per_size), 'sizes': [list(s) for s in sizes], 'per_size': per_size}
