"""Segmentation quality against ground truth: matched objects at an IoU threshold (F1, mean matched IoU).

Matching follows the usual instance-segmentation convention (StarDist,
Caicedo et al. 2019): a predicted and a true object match when their IoU
exceeds the threshold (> 0.5 makes matches unique); F1 = 2 TP / (2 TP + FP + FN).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix


def match(truth: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """F1, precision, recall and mean IoU of the matched pairs for two label images."""
    t, p = truth.ravel().astype(np.int64), pred.ravel().astype(np.int64)
    nt, npred = int(t.max()), int(p.max())
    inter = coo_matrix((np.ones(len(t)), (t, p)), shape=(nt + 1, npred + 1)).toarray()[1:, 1:]
    area_t = np.bincount(t, minlength=nt + 1)[1:]
    area_p = np.bincount(p, minlength=npred + 1)[1:]
    union = area_t[:, None] + area_p[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    ti, pj = np.nonzero(iou > threshold)  # unique for thresholds >= 0.5
    tp = len(ti)
    n_true, n_pred = int((area_t > 0).sum()), int((area_p > 0).sum())
    fp, fn = n_pred - tp, n_true - tp
    return {"f1": 2 * tp / max(2 * tp + fp + fn, 1), "precision": tp / max(n_pred, 1), "recall": tp / max(n_true, 1),
            "mean_matched_iou": float(iou[ti, pj].mean()) if tp else 0.0, "true": n_true, "predicted": n_pred,
            "matched": tp}
