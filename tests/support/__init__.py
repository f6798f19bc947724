"""Helpers the test packages share: small nets and their task, hand-built result frames, the libraries'
documented departures, fake library states, model factories and Grad-CAM nets.

Importable as ``support`` from every test folder: ``tests/`` is on ``sys.path`` for its conftest.py.
"""
