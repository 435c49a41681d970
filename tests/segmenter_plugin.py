"""A plug-in segmenter for the tests: instance labels from a fixed threshold (the interface of scipzarr.plugins)."""

import numpy as np
from scipy import ndimage as ndi


def threshold_instances(block: np.ndarray, level: float = 500.0) -> np.ndarray:
    labels, _ = ndi.label(block[0] > level, structure=np.ones((3, 3)))
    return labels
