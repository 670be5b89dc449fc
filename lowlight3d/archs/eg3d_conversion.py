"""EG3D decoder weights -> :class:`~lowlight3d.archs.triplane_renderer_arch.TriplaneRenderer` weights
(``docs/prior3d.md`` section 1.3).

Decoder weights of EG3D-space encoders (GOAE, TriPlaneNet, an LP3D port) are stored once, as the state dict of
EG3D's ``OSGDecoder`` (``torch.save(G.decoder.state_dict(), 'decoder.pt')`` in the encoder's own environment; keys
``net.0.weight``, ``net.0.bias``, ``net.2.weight``, ``net.2.bias``, any common prefix such as ``decoder.`` is
accepted).  :func:`convert_eg3d_decoder` turns them into the weights of the renderer's decoder (``hidden`` 64,
``plane_axes: eg3d``); :func:`find_eg3d_decoder` recognises such a state dict.  The tri-plane files themselves are
read by :mod:`lowlight3d.data.external_triplanes`.  This module only converts tensors; the toolkit ships no external
weights.
"""
import math

__all__ = ['find_eg3d_decoder', 'convert_eg3d_decoder']


def find_eg3d_decoder(state):
    """The key prefix of an EG3D ``OSGDecoder`` state dict inside ``state``, or None when there is none.

    Args:
        state (dict): A state dict (e.g. ``G.decoder.state_dict()`` or a whole generator's).

    Returns:
        str | None: Prefix ``p`` such that ``p + 'net.0.weight'`` ... ``p + 'net.2.bias'`` are all present.

    Raises:
        ValueError: Several decoders, or a decoder with more than one hidden layer.
    """
    if not isinstance(state, dict):
        return None
    prefixes = [k[:-len('net.0.weight')] for k in state if isinstance(k, str) and k.endswith('net.0.weight')]
    prefixes = [p for p in prefixes if all(p + s in state for s in ('net.0.bias', 'net.2.weight', 'net.2.bias'))]
    if not prefixes:
        return None
    if len(prefixes) > 1:
        raise ValueError(f'several EG3D decoders in one state dict (prefixes {prefixes}); save only G.decoder')
    if prefixes[0] + 'net.4.weight' in state:
        raise ValueError('EG3D decoders with more than one hidden layer are not supported (TriplaneRenderer has '
                         'FC -> Softplus -> FC)')
    return prefixes[0]


def convert_eg3d_decoder(state, lr_mul=1.0, out_features=4):
    """EG3D ``OSGDecoder`` weights -> :class:`TriplaneRenderer` decoder weights (``docs/prior3d.md`` 1.3).

    EG3D's layers are StyleGAN2 equalised-learning-rate layers: at run time the stored weight is multiplied by
    ``lr_mul / sqrt(fan_in)`` and the stored bias by ``lr_mul`` (``decoder_lr_mul`` = 1 in the FFHQ configs).  An
    ``nn.Linear`` therefore gets ``W * lr_mul / sqrt(32)`` (first layer) and ``W * lr_mul / sqrt(64)`` (second).
    The second layer outputs ``1 + 32`` (density, 32 features of which 0..2 are the raw-render RGB); the
    elementwise sigmoid makes keeping the first ``out_features`` = 4 rows (density + RGB) exact.

    Args:
        state (dict): State dict holding ``[prefix]net.{0,2}.{weight,bias}``.
        lr_mul (float): EG3D's ``decoder_lr_mul``.
        out_features (int): Outputs of the renderer's last layer (1 density + 3 colour).

    Returns:
        dict: ``decoder.0.weight``, ``decoder.0.bias``, ``decoder.2.weight``, ``decoder.2.bias`` (float32).
    """
    prefix = find_eg3d_decoder(state)
    if prefix is None:
        raise KeyError(f'not an EG3D decoder state dict (need net.0.weight, net.0.bias, net.2.weight, net.2.bias); '
                       f'got keys {list(state)[:8]}')
    w0, b0 = state[prefix + 'net.0.weight'].float(), state[prefix + 'net.0.bias'].float()
    w1, b1 = state[prefix + 'net.2.weight'].float(), state[prefix + 'net.2.bias'].float()
    if w1.shape[0] < out_features:
        raise ValueError(f'the EG3D decoder has {w1.shape[0]} outputs, fewer than the {out_features} needed')
    return {
        'decoder.0.weight': w0 * (lr_mul / math.sqrt(w0.shape[1])),
        'decoder.0.bias': b0 * lr_mul,
        'decoder.2.weight': w1[:out_features] * (lr_mul / math.sqrt(w1.shape[1])),
        'decoder.2.bias': b1[:out_features] * lr_mul,
    }
