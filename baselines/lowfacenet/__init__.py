"""Low-FaceNet (Fan et al., IEEE TIM 2024) in the lowlight3d toolkit: registry keys ``LowFaceNet.<Name>``.

``LowFaceNet.EnhanceNet`` / ``LowFaceNet.FaceNet`` (archs), ``LowFaceNet.FeatureContrastLoss``,
``BrightnessContrastLoss``, ``PerceptualLoss``, ``ColorLoss``, ``SmoothnessLoss``, ``SemanticBrightnessLoss``,
``FaceRecognitionLoss`` (losses) and ``LowFaceNet.LowFaceNetModel`` (model).  Its data:
:class:`lowlight3d.data.face_parsing_dataset.FaceParsingLowLightDataset`.  Notes and deviations:
``baselines/README.md``.
"""
from baselines.lowfacenet import (
                                  face_alignment,
                                  facenet_arch,
                                  lowfacenet_arch,
                                  lowfacenet_face_loss,
                                  lowfacenet_loss,
                                  lowfacenet_model,  # noqa: F401
)

__all__ = ['face_alignment', 'facenet_arch', 'lowfacenet_arch', 'lowfacenet_face_loss', 'lowfacenet_loss',
           'lowfacenet_model']
