"""Data (Kaggle scan, split, synthetic generator), DenseNet-121, training and checkpoints.

Imports nothing else of advparity: training knows no attacks.
"""
