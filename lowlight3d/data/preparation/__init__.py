"""Data preparation for the paper's two data sets (section 4.1): the paired FFHQ set and CelebV-Low.

One concept per module:

* :mod:`.ffhq_preparation`: FFHQ selection, resizing and the fixed pre-synthesised low-light test input;
* :mod:`.celebv_low_preparation`: the CelebV-Low pipeline (frames -> low-light test -> faces -> quality -> split);
* :mod:`.video_frames`, :mod:`.face_detection`, :mod:`.face_alignment`, :mod:`.frame_quality`: its building blocks;
* :mod:`.lowlight_criterion`: the paper's brightness rule and our scene-aware rule;
  :mod:`.criterion_report` measures both on UTKFace / Yale B;
* :mod:`.decision_ledger`, :mod:`.dataset_writing`: resumable ledgers and set folders / LMDBs.

Entry points: ``scripts/data_preparation/prepare_ffhq.py`` and ``prepare_celebv_low.py``; see
``docs/data_preparation.md``.
"""
