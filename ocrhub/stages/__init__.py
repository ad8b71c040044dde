"""The OCR stages, each its own pre-processing → ``Predictor.run`` → post-processing, on numpy and OpenCV.

Written from PP-OCR's algorithms as paddleocr 2.10 implements them, to give the same boxes, angles
and texts from the same model outputs (``tests/test_stages.py`` checks them against paddleocr's own
classes); nothing here imports paddle or paddleocr, so a worker on OpenVINO's runtime needs neither.

- ``det``: resize to a multiple of 32 within ``det_limit_side_len``, normalize, then DB
  post-processing (threshold map → contours → minimum-area boxes → score → unclip → page
  coordinates), boxes ordered top-to-bottom, left-to-right;
- ``crop``: a box's line, cut out and turned straight (perspective warp);
- ``lines``: what direction classification and recognition share: resize to the model's height,
  normalize, pad, and batches of lines of similar width/height ratio;
- ``cls``: 0 or 180 degrees per line, turning lines the model is sure are upside down;
- ``rec``: text and confidence per line by greedy CTC decoding over the model's dictionary.
"""
