"""Low-FaceNet's face-recognition loss: cross-entropy of cosine similarities to an identity gallery (weight 1).

Per enhanced image (any batch size; the original hard-wires two images):

1. a landmark detector (:mod:`baselines.lowfacenet.face_alignment`; RetinaFace MobileNet0.25 in the original) runs
   without gradients and gives the largest face and its 5 landmarks;
2. the face is cropped, levelled and letterboxed to 160 x 160 (:func:`~baselines.lowfacenet.face_alignment.align_face`,
   differentiable) and embedded by a frozen FaceNet (MobileNetV1, 128-d,
   :mod:`baselines.lowfacenet.facenet_arch`);
3. its cosine similarities to every gallery identity are the logits (used directly, no temperature, as the
   original); without a face the logits are zeros (the loss is then ``log(G)`` and gives no gradient).

The loss is ``loss_weight * CE(logits, labels)`` over the batch.  The gallery is built once (at the first call or
by :meth:`FaceRecognitionLoss.build_gallery`) from the normal-light images of ``gallery_root``: identity names from
the file names (:func:`lowlight3d.data.face_parsing_dataset.identity_of`: ``prefix`` / ``stem`` / ``csv``), one
encoding per identity = the normalised mean of its images' embeddings (the original keeps one image per identity;
with one image both agree).  Gallery images in which no face is found are embedded whole (letterboxed); their number
is reported.  ``gallery_cache`` stores the encodings (``.npz``) keyed by the file list and the weights used.
"""
import hashlib
import json
import os
import os.path as osp
import warnings
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.lowfacenet.face_alignment import FaceBox, align_face, build_landmark_detector, to_uint8_rgb
from baselines.lowfacenet.facenet_arch import load_facenet
from lowlight3d.utils.checkpoint import atomic_write
from lowlight3d.utils.registry import LOSS_REGISTRY, register

__all__ = ['FaceRecognitionLoss']


def _whole(h, w):
    """A face covering the whole image with level eyes (used when a gallery image has no detected face)."""
    return FaceBox((0, 0, w, h), [(0.35 * w, 0.4 * h), (0.65 * w, 0.4 * h), (0.5 * w, 0.55 * h), (0.38 * w, 0.7 * h),
                                  (0.62 * w, 0.7 * h)])


@register(LOSS_REGISTRY, name='LowFaceNet.FaceRecognitionLoss')
class FaceRecognitionLoss(nn.Module):
    """Identity cross-entropy of the enhanced faces against a normal-light gallery (module docstring).

    Args:
        loss_weight (float): 1 in the original.
        gallery_root (str): Folder of normal-light gallery images (required).
        identity_from (str): ``prefix`` (file stem without a trailing ``_<digits>``, LaPa/LFW names), ``stem`` (one
            identity per file) or ``csv``.
        identity_csv (str, optional): ``file,identity`` table for ``identity_from: csv``.
        meta_info_file (str, optional): List of gallery file names (one per line) inside ``gallery_root``.
        gallery_cache (str, optional): ``.npz`` file caching the gallery encodings.
        detector (str): ``retinaface`` (original), ``mediapipe`` (offline) or ``template`` (tests only).
        detector_opt (dict, optional): Options of the detector (``weights_path``, ``conf_threshold`` ...).
        facenet_weights (str | None): ``None`` (resolve ``facenet_mobilenet.pth``), a path, or ``random_for_tests``.
        face_size (int): FaceNet input side (160).
    """

    def __init__(self, loss_weight=1.0, gallery_root=None, identity_from='prefix', identity_csv=None,
                 meta_info_file=None, gallery_cache=None, detector='retinaface', detector_opt=None,
                 facenet_weights=None, face_size=160):
        super().__init__()
        if not gallery_root:
            raise ValueError('LowFaceNet.FaceRecognitionLoss: gallery_root (a folder of normal-light face images, '
                             'the identity gallery) is required in train.face_opt')
        if not osp.isdir(gallery_root):
            raise FileNotFoundError(f'LowFaceNet.FaceRecognitionLoss: gallery_root {gallery_root!r} is not a folder '
                                    '(train.face_opt.gallery_root)')
        self.loss_weight = float(loss_weight)
        self.gallery_root, self.identity_from, self.identity_csv = gallery_root, identity_from, identity_csv
        self.meta_info_file, self.gallery_cache = meta_info_file, gallery_cache
        self.face_size = int(face_size)
        self.detector = build_landmark_detector(detector, **dict(detector_opt or {}))
        self.facenet = load_facenet(facenet_weights)
        if self.facenet.is_random_standin:
            self.facenet_source = 'random stand-in'
        else:  # the file and its modification time key the gallery cache
            path = self.facenet.source_path
            self.facenet_source = f'{path} (modified {os.path.getmtime(path):.0f})'
        self.names = None
        self.register_buffer('gallery', torch.zeros(0, 128), persistent=False)
        #: Counters of the last call: faces found among the images, and gallery images embedded whole.
        self.stats = OrderedDict(found=0, images=0, gallery_without_face=0)

    def train(self, mode=True):
        """FaceNet stays in eval mode (frozen BatchNorm statistics, no dropout) whatever the caller asks."""
        super().train(mode)
        self.facenet.eval()
        return self

    def describe(self):
        """str: Which detector and FaceNet weights are used (stand-ins are named as such)."""
        return f'detector: {self.detector.describe()}; FaceNet: {self.facenet_source}'

    # ------------------------------------------------------------------ gallery
    def _gallery_files(self):
        from lowlight3d.data.face_parsing_dataset import identity_table, list_images
        files = list_images(self.gallery_root, self.meta_info_file)
        table = identity_table(self.identity_from, self.identity_csv)
        return files, [table(f) for f in files]

    def build_gallery(self):
        """Compute (or load from ``gallery_cache``) one encoding per identity; returns the sorted identity names."""
        files, idents = self._gallery_files()
        names = sorted(set(idents))
        key = hashlib.sha1(json.dumps([[osp.basename(f) for f in files], idents, self.facenet_source,
                                       self.detector.name]).encode()).hexdigest()
        if self.gallery_cache and osp.isfile(self.gallery_cache):
            data = np.load(self.gallery_cache, allow_pickle=False)
            if str(data['key']) == key:
                self.names = [str(n) for n in data['names']]
                self.gallery = torch.from_numpy(data['encodings']).float().to(self.gallery.device)
                self.stats['gallery_without_face'] = int(data['without_face']) if 'without_face' in data else 0
                return self.names
        from lowlight3d.utils.img_io import read_image
        sums = {n: torch.zeros(128) for n in names}
        counts = dict.fromkeys(names, 0)
        whole = 0
        device = self.gallery.device
        with torch.no_grad():
            for path, ident in zip(files, idents):
                img = torch.from_numpy(np.ascontiguousarray(read_image(path).transpose(2, 0, 1))).float()
                img = img.unsqueeze(0).to(device)
                face = self.detector(to_uint8_rgb(img[0]))
                if face is None:
                    face, whole = _whole(*img.shape[-2:]), whole + 1
                emb = self.facenet(align_face(img, face, self.face_size))[0].cpu()
                sums[ident] += emb
                counts[ident] += 1
        enc = torch.stack([F.normalize(sums[n] / counts[n], dim=0) for n in names])
        self.names, self.gallery = names, enc.to(device)
        self.stats['gallery_without_face'] = whole
        if whole:
            warnings.warn(f'LowFaceNet face loss: no face found in {whole} of {len(files)} gallery images of '
                          f'{self.gallery_root} ({self.detector.name}); they were embedded whole', stacklevel=2)
        if self.gallery_cache:
            atomic_write(self.gallery_cache, lambda tmp: np.savez(tmp, key=key, names=np.array(names),
                                                                  encodings=enc.numpy(), without_face=whole),
                         suffix='.npz')
        return names

    def labels_of(self, identities):
        """Gallery indices of identity names (a clear error for names the gallery lacks)."""
        if self.names is None:
            self.build_gallery()
        index = {n: i for i, n in enumerate(self.names)}
        missing = sorted({str(n) for n in identities if str(n) not in index})
        if missing:
            raise KeyError(f'LowFaceNet face loss: identities {missing[:5]} are not in the gallery of '
                           f'{self.gallery_root} ({len(self.names)} identities, identity_from: {self.identity_from}); '
                           'the training images and the gallery must name identities the same way')
        return torch.tensor([index[str(n)] for n in identities], dtype=torch.long, device=self.gallery.device)

    # ------------------------------------------------------------------ loss
    def logits(self, enhanced):
        """``N x G`` cosine similarities of each enhanced face to the gallery (zeros where no face is found)."""
        if self.names is None:
            self.build_gallery()
        rows, found = [], 0
        for b in range(enhanced.shape[0]):
            face = self.detector(to_uint8_rgb(enhanced[b]))
            if face is None:
                rows.append(enhanced.new_zeros(len(self.names)))
                continue
            found += 1
            emb = self.facenet(align_face(enhanced[b:b + 1], face, self.face_size))[0]
            rows.append(F.cosine_similarity(self.gallery.to(emb), emb.unsqueeze(0), dim=1))
        self.stats['found'], self.stats['images'] = found, enhanced.shape[0]
        return torch.stack(rows)

    def forward(self, enhanced, identities):
        """``loss_weight * CE(logits(enhanced), labels)``; ``identities``: names (strings) or gallery indices."""
        if torch.is_tensor(identities):
            labels = identities.to(self.gallery.device).long()
        else:
            labels = self.labels_of(list(identities))
        if len(labels) != enhanced.shape[0]:
            raise ValueError(f'LowFaceNet face loss: {enhanced.shape[0]} images but {len(labels)} identity labels')
        logits = self.logits(enhanced)
        self.last_accuracy = float((logits.argmax(1) == labels).float().mean()) if self.stats['found'] else 0.0
        return self.loss_weight * F.cross_entropy(logits, labels)
