"""Inference on users' own photos and videos: the deployment side of the toolkit (as GFPGAN's ``GFPGANer``).

One concept per module:

* :mod:`.model_file`: self-contained model files (network options, test-network weights, the embedded 3D prior
  record of :mod:`lowlight3d.models.prior_file`, test-time settings) and their export from option files;
* :mod:`.loaded_model`: :class:`~.loaded_model.LoadedModel`, a model file ready to enhance tensors through the
  method's own ``test()``;
* :mod:`.tiling`, :mod:`.devices`: seamless tiles; ``--device`` / ``--half``;
* :mod:`.image_enhancer`: :class:`~.image_enhancer.ImageEnhancer`, whole photos (tiling, gray handling);
* :mod:`.background`, :mod:`.face_enhancer`: face mode, :class:`~.face_enhancer.FaceEnhancer` (detect on a
  brightened copy, align, enhance, paste back over the background);
* :mod:`.video`: streamed video with PyAV (frame rate and audio kept);
* :mod:`.onnx_export`: ONNX graphs with dynamic height/width and their onnxruntime parity;
* :mod:`.command`, :mod:`.export_command`, :mod:`.benchmark`: the logic of ``inference_lowlight3d.py``,
  ``scripts/export_model.py`` and ``scripts/photo_speed.py``.

Nothing is imported here (importing the package stays cheap); import the modules you need.
"""
