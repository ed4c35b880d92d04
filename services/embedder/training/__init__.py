"""Offline training and evaluation of semantic heads: datasets, cached CNN features, the DeViSE
fit and its calibration, and the evaluation report. Serving never imports this package."""
