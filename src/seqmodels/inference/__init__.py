"""Using a finished run: load it (`load_run`), answer texts and files in batches, export to ONNX.

`scripts/predict.py`, `scripts/evaluate.py`, `scripts/export.py` and the Python API
(`from seqmodels import load_run`) all load a run through `loading.load_run`.
"""
