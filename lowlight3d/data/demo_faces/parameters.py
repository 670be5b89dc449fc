"""Parameters of the demo faces: random shape, appearance, light, camera and background, derived from seeds."""
import json
import math

import cv2
import numpy as np

from lowlight3d.data.demo_faces.colour import _linear_to_srgb, _srgb_to_linear

__all__ = ['GENERATOR_VERSION', 'SKIN_TONES_SRGB', 'sample_face_params', 'sample_lowlight_params', 'mirror_params',
           'face_params_for']

GENERATOR_VERSION = '1.0'

# Monk Skin Tone scale swatches (sRGB, 1 = lightest, 10 = darkest) used as skin albedo anchors.
SKIN_TONES_SRGB = ((246, 237, 228), (243, 231, 219), (247, 234, 208), (234, 218, 186), (215, 189, 150),
                   (160, 126, 86), (130, 92, 67), (96, 65, 52), (58, 49, 42), (41, 36, 32))

_HAIR_SRGB = {
    'black': (28, 24, 22),
    'dark_brown': (55, 38, 28),
    'brown': (95, 65, 42),
    'light_brown': (140, 102, 66),
    'blonde': (196, 160, 108),
    'auburn': (125, 55, 30),
    'grey': (150, 148, 145),
}
_IRIS_SRGB = {
    'dark_brown': (50, 30, 18),
    'brown': (95, 58, 30),
    'hazel': (120, 95, 50),
    'green': (85, 115, 75),
    'blue': (80, 120, 165),
    'grey': (120, 130, 140),
}
_SPLIT_CODES = {'train': 1, 'val': 2, 'test': 3, 'unpaired': 4}


def _srgb_tuple(c):
    return [round(float(v), 5) for v in c]


def _skin_from_tone(u, undertone):
    """Skin albedo (sRGB, 0-1) at position ``u`` in [0, 1] along the Monk scale (0 = lightest)."""
    tones = _srgb_to_linear(np.asarray(SKIN_TONES_SRGB, dtype=np.float64) / 255.0)
    pos = np.clip(u, 0, 1) * (len(tones) - 1)
    i = min(int(pos), len(tones) - 2)
    f = pos - i
    lin = tones[i] * (1 - f) + tones[i + 1] * f
    lin = lin * np.array([1.0 + 0.06 * undertone, 1.0, 1.0 - 0.08 * undertone])
    return _linear_to_srgb(lin)


def _uniform(rng):
    """``U(a, b)``: one float drawn uniformly in ``[a, b)`` from ``rng`` (the draw order fixes every face)."""
    return lambda a, b: float(rng.uniform(a, b))


def _sample_shape(U, rng):
    """Head, feature and asymmetry proportions (multipliers and offsets of the constants of
    :class:`~lowlight3d.data.demo_faces.geometry.FaceModel`)."""
    return {
        'head_width': U(0.92, 1.08),
        'head_height': U(0.95, 1.05),
        'jaw_width': U(0.88, 1.12),
        'chin_length': U(-0.5, 0.5),
        'cheek_fullness': U(0.85, 1.2),
        'eye_spacing': U(3.05, 3.4),
        'eye_size': U(1.12, 1.22),
        'eye_open': U(0.7, 1.0),
        'brow_height': U(-0.2, 0.3),
        'brow_prominence': U(0.85, 1.15),
        'brow_thickness': U(0.7, 1.25),
        'nose_length': U(0.88, 1.15),
        'nose_width': U(0.85, 1.25),
        'nose_projection': U(0.85, 1.15),
        'lip_fullness': U(0.8, 1.3),
        'mouth_width': U(0.88, 1.15),
        'ear_size': U(0.9, 1.1),
        'neck_width': U(0.9, 1.1),
        'asymmetry': float(np.clip(rng.normal(0, 0.15), -0.3, 0.3)),
    }


def _sample_palette(U, rng, skin_tone):
    """Skin tone and undertone, hair and iris colour names (darker skin: darker hair and eyes), hair and lip
    colours; returns a dict of these intermediate values."""
    tone = U(0, 1) if skin_tone is None else float(skin_tone)
    undertone = U(-1, 1)
    skin = _skin_from_tone(tone, undertone)
    dark = tone > 0.45
    hair_names = list(_HAIR_SRGB)
    hw = np.array([3, 3, 2, 1.5, 1, 0.7, 0.8]) if not dark else np.array([6, 3, 1, 0.3, 0.1, 0.1, 0.6])
    hair_name = hair_names[int(rng.choice(len(hair_names), p=hw / hw.sum()))]
    iris_names = list(_IRIS_SRGB)
    iw = np.array([2, 3, 1.5, 1, 1.5, 0.5]) if not dark else np.array([6, 3, 0.5, 0.1, 0.1, 0.1])
    iris_name = iris_names[int(rng.choice(len(iris_names), p=iw / iw.sum()))]
    hair_col = np.asarray(_HAIR_SRGB[hair_name]) / 255.0 * U(0.85, 1.15)
    lip_lin = _srgb_to_linear(skin) * np.array([0.95, 0.6, 0.62]) * U(0.75, 1.0)
    return {'tone': tone, 'undertone': undertone, 'skin': skin, 'hair_name': hair_name, 'iris_name': iris_name,
            'hair_col': hair_col, 'lip_lin': lip_lin}


def _sample_hair(U, rng):
    """Hair style (short or long), thickness, volume, hairline height and slope, and length."""
    hair = {
        'style': 'long' if rng.uniform() < 0.35 else 'short',
        'thickness': U(0.5, 1.8),
        'volume': U(0.0, 0.8),
        'hairline': U(6.6, 8.2),
        'slope': U(0.55, 0.85),
    }
    hair['length'] = U(0.4, 1.0) if hair['style'] == 'long' else 0.0
    return hair


def _sample_appearance(U, palette):
    """Colours (sRGB in [0, 1]) of skin, lips, hair, iris and sclera, pupil size, blush and gaze."""
    return {
        'skin_tone': palette['tone'],
        'undertone': palette['undertone'],
        'skin_srgb': _srgb_tuple(palette['skin']),
        'lip_srgb': _srgb_tuple(_linear_to_srgb(palette['lip_lin'])),
        'hair_color': palette['hair_name'],
        'hair_srgb': _srgb_tuple(np.clip(palette['hair_col'], 0, 1)),
        'iris_color': palette['iris_name'],
        'iris_srgb': _srgb_tuple(np.asarray(_IRIS_SRGB[palette['iris_name']]) / 255.0),
        'sclera_srgb': _srgb_tuple(np.array([0.93, 0.9, 0.88]) * U(0.9, 1.0)),
        'pupil': U(0.85, 1.2),
        'blush': U(0.0, 0.5),
        'gaze': [U(-0.12, 0.12), U(-0.08, 0.08)],
    }


def _sample_light(U):
    """One directional light (direction, colour temperature, intensity, specular) plus ambient light, exposure."""
    az = math.radians(U(-60, 60))
    el = math.radians(U(-5, 45))
    return {
        'dir': [math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)],
        'kelvin': U(3200, 7500),
        'intensity': U(2.2, 3.0),
        'ambient': U(0.35, 0.6),
        'ambient_kelvin': U(5000, 9000),
        'specular': U(0.6, 1.4),
        'exposure': U(0.9, 1.15),
    }


def _sample_background(U):
    """A two-colour linear gradient with a soft glow."""
    hue = U(0, 1)
    base = np.array(cv2.cvtColor(np.uint8([[[int(hue * 179), int(U(20, 90)), int(U(90, 210))]]]),
                                 cv2.COLOR_HSV2RGB)[0, 0] / 255.0)
    other = np.clip(base * U(0.45, 0.8), 0, 1)
    ga = U(0, 2 * math.pi)
    return {
        'color0': _srgb_tuple(base),
        'color1': _srgb_tuple(other),
        'grad': [0.9 * math.cos(ga), 0.9 * math.sin(ga)],
        'glow_center': [U(-0.4, 0.4), U(-0.4, 0.2)],
        'glow': U(0.0, 0.25),
    }


def sample_face_params(rng, skin_tone=None, yaw_range=25.0, pitch_range=15.0):
    """Draw the parameters of one normal-light synthetic face.

    The draws happen in a fixed order (shape, palette, hair, appearance, light, camera, background), so a seed
    always gives the same face.

    Args:
        rng (np.random.Generator or int): Random generator or seed.
        skin_tone (float, optional): Position in [0, 1] on the Monk skin-tone scale (0 = lightest,
            1 = darkest); drawn uniformly if None.
        yaw_range (float): Yaw is uniform in ``[-yaw_range, yaw_range]`` degrees.
        pitch_range (float): Pitch is uniform in ``[-pitch_range, pitch_range]`` degrees.

    Returns:
        dict: json-serialisable parameters with keys ``shape``, ``hair``, ``appearance``, ``light``,
        ``camera`` (``yaw_deg``, ``pitch_deg``), ``background`` and ``version``.
    """
    rng = np.random.default_rng(rng)
    U = _uniform(rng)
    shape = _sample_shape(U, rng)
    palette = _sample_palette(U, rng, skin_tone)
    hair = _sample_hair(U, rng)
    appearance = _sample_appearance(U, palette)
    light = _sample_light(U)
    camera = {'yaw_deg': U(-yaw_range, yaw_range), 'pitch_deg': U(-pitch_range, pitch_range)}
    background = _sample_background(U)
    return {
        'version': GENERATOR_VERSION,
        'shape': shape,
        'hair': hair,
        'appearance': appearance,
        'light': light,
        'camera': camera,
        'background': background,
        'lowlight': None,
    }


def sample_lowlight_params(rng, skin_tone=None):
    """Draw parameters of a "real-like" low-light face (no ground truth).

    One of three scenarios is chosen: ``underexposed`` (ordinary light, very low exposure), ``dim_colored``
    (a weak tungsten/sodium/blue light, almost no ambient) or ``side_light`` (hard light from the side with
    deep shadows). Sensor-like noise parameters are added under ``lowlight``.

    Args:
        rng (np.random.Generator or int): Random generator or seed.
        skin_tone (float, optional): See :func:`sample_face_params`.

    Returns:
        dict: Parameters as :func:`sample_face_params` with ``lowlight`` filled in.
    """
    rng = np.random.default_rng(rng)
    p = sample_face_params(rng, skin_tone=skin_tone)
    scenario = ['underexposed', 'dim_colored', 'side_light'][int(rng.integers(3))]
    L = p['light']
    if scenario == 'underexposed':
        L['exposure'] = float(rng.uniform(0.05, 0.14))
    elif scenario == 'dim_colored':
        L['kelvin'] = float(rng.choice([1900.0, 2300.0, 2800.0, 12000.0]))
        L['ambient'] = float(rng.uniform(0.02, 0.08))
        L['ambient_kelvin'] = float(rng.uniform(2500, 12000))
        L['exposure'] = float(rng.uniform(0.08, 0.2))
    else:
        side = 1.0 if rng.uniform() < 0.5 else -1.0
        az = math.radians(side * rng.uniform(65, 100))
        el = math.radians(rng.uniform(-10, 35))
        L['dir'] = [math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)]
        L['ambient'] = float(rng.uniform(0.0, 0.04))
        L['intensity'] = float(rng.uniform(2.0, 3.5))
        L['exposure'] = float(rng.uniform(0.12, 0.3))
    bg = p['background']
    dim = float(rng.uniform(0.15, 0.5))
    bg['color0'] = _srgb_tuple(np.asarray(bg['color0']) * dim)
    bg['color1'] = _srgb_tuple(np.asarray(bg['color1']) * dim)
    p['lowlight'] = {
        'scenario': scenario,
        'photons': float(rng.uniform(80, 400)),  # photo-electrons at linear value 1
        'read_noise': float(rng.uniform(0.002, 0.012)),
        'chroma_gain': [float(v) for v in rng.uniform(0.85, 1.15, 3)],
        'seed': int(rng.integers(2**31)),
    }
    return p


def mirror_params(params):
    """Parameters of the horizontally mirrored scene (yaw, light, background, asymmetry flipped).

    Rendering the result gives the horizontally flipped image (exactly for a symmetric face).

    Args:
        params (dict): Face parameters.

    Returns:
        dict: A mirrored deep copy.
    """
    p = json.loads(json.dumps(params))
    p['camera']['yaw_deg'] = -p['camera']['yaw_deg']
    p['light']['dir'][0] = -p['light']['dir'][0]
    p['shape']['asymmetry'] = -p['shape']['asymmetry']
    p['background']['grad'][0] = -p['background']['grad'][0]
    p['background']['glow_center'][0] = -p['background']['glow_center'][0]
    p['appearance']['gaze'][0] = -p['appearance']['gaze'][0]
    return p


def _face_seed(seed, split, index):
    return np.random.SeedSequence([int(seed), _SPLIT_CODES[split], int(index)])


def face_params_for(seed, split, index):
    """Deterministic parameters of face ``index`` of ``split`` for a data set ``seed``.

    Skin tones follow a low-discrepancy sequence over the index (plus jitter), so that even small
    subsets cover the whole range from very light to very dark.

    Args:
        seed (int): Data-set seed.
        split (str): ``train``, ``val``, ``test`` or ``unpaired`` (different identities per split).
        index (int): Face index within the split.

    Returns:
        dict: Face parameters (low-light parameters for ``unpaired``).
    """
    rng = np.random.default_rng(_face_seed(seed, split, index))
    golden = 0.6180339887498949
    tone = (index * golden + 0.137 * _SPLIT_CODES[split] + 0.31 * (seed % 97) + rng.uniform(-0.05, 0.05)) % 1.0
    if split == 'unpaired':
        return sample_lowlight_params(rng, skin_tone=tone)
    return sample_face_params(rng, skin_tone=tone)
