"""The global random generators libraries draw their random start from, seeded per call and restored."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch


@contextlib.contextmanager
def seeded_global_rngs(seed: int, device: torch.device) -> Iterator[None]:
    """Seed NumPy's and torch's global RNGs (CPU and ``device``) and restore their states afterwards.

    Libraries offer no generator argument for their random start; this is as far as seeding goes
    without clobbering the caller's random streams.
    """
    numpy_state = np.random.get_state()
    cuda_devices = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    with torch.random.fork_rng(devices=cuda_devices):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda_devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
