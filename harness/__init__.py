"""The orchestrator: presets, the pipeline steps and the command line (``python -m harness``)."""
