"""Deployment: what happens to a network after the search found it.

One small module per job, all taking the same MODEL argument (:func:`load.load_model`: a trained
``model.pt``, a preset, a spec file or block strings):

* :mod:`load`        MODEL -> network in eval mode (trained weights, or seeded random ones)
* :mod:`fuse`        fold BatchNorm into the convolution before it
* :mod:`export`      TorchScript and ONNX files, each checked against PyTorch after writing
* :mod:`quantize`    int8 post-training static quantization (ONNX Runtime), calibrated on minival
* :mod:`runtimes`    one calling convention for eager PyTorch, TorchScript and ONNX Runtime
* :mod:`measure`     latency percentiles and peak memory of a callable
* :mod:`bench`       runtimes x batch sizes x thread counts, side by side
* :mod:`pipeline`    ``nas export`` in one call: load, fold, export, check, quantize, compare accuracy
* :mod:`blocks`      a network cut into the pieces a latency table times (stem, blocks, head)
* :mod:`latency_table` per-block latency tables of a search space, and the predictor built on them
* :mod:`machine`     what a measurement was taken on

Torch, onnx and onnxruntime are imported inside the functions that need them, so that importing
this package (or the ``nas`` command) stays fast.
"""
