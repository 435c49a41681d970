"""Background-referenced IFC masks (``segmentation.threshold.method: background``): right on real brightfield,
no objects in events that hold only noise."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import scipzarr
from scipzarr.config import resolve_config
from scipzarr.pipeline import process
from scipzarr.store import open_store


def _mean_iou(store, name: str, reference: dict, channel: int) -> float:
    st = open_store(store)
    lab = zarr.open_array(str(store / "labels" / name / "s0"))[:]
    th, tw = st.mosaic.tile
    rows, cols = st.mosaic.tile_position(np.arange(st.mosaic.n_events))
    ious = []
    for i in range(st.mosaic.n_events):
        e = st.events.iloc[i]
        tile = lab[rows[i] * th:(rows[i] + 1) * th, cols[i] * tw:(cols[i] + 1) * tw]
        ours = tile[e.valid_y0:e.valid_y0 + e.valid_height, e.valid_x0:e.valid_x0 + e.valid_width] > 0
        ideas = reference[f"mask_{i:03d}"][channel][e.crop_y0:e.crop_y0 + e.valid_height,
                                                    e.crop_x0:e.crop_x0 + e.valid_width].astype(bool)
        union = (ours | ideas).sum()
        ious.append(1.0 if union == 0 else (ours & ideas).sum() / union)
    return float(np.mean(ious))


def test_brightfield_masks_match_ideas_on_the_real_flowsight_events(cif, tmp_path):
    """The 111 real events: our brightfield (Ch5) mask against IDEAS's, mean IoU >= 0.80 (Otsu: about 0.31,
    keeping only the part of the cell brighter than the grey background)."""
    from .conftest import CIF_REFERENCE

    with np.load(CIF_REFERENCE) as ref:
        reference = {k: ref[k] for k in ref.files}
    scipzarr.convert([cif], tmp_path / "s.zarr", progress=False)
    store = tmp_path / "s.zarr"
    for method, name in (("background", "bg"), ("otsu", "otsu")):
        config = resolve_config({"segmentation": {"channels": ["Ch5"], "threshold": {"method": method},
                                                  "keep": "largest"}, "labels": {"name": name}})
        table = process(store, config, progress=False)
        assert table.n_obs == 111
    bg, otsu = _mean_iou(store, "bg", reference, 4), _mean_iou(store, "otsu", reference, 4)
    assert bg >= 0.80 and otsu < 0.5, (bg, otsu)


def test_noise_only_events_get_no_object_and_every_cell_is_found(tmp_path):
    from scipzarr.synthetic import make_events

    cells, truth = make_events(40, channels=1, size=40, seed=5, noise=20.0)
    rng = np.random.default_rng(6)
    noise = [np.clip(np.round(100 + rng.normal(0, 20, (1, 40, 40))), 0, None).astype(np.uint16) for _ in range(40)]
    np.save(tmp_path / "e.npy", np.stack(cells + noise))
    scipzarr.convert([tmp_path / "e.npy"], tmp_path / "s.zarr", chunk_tiles=4, progress=False)
    found = {}
    for method in ("background", "otsu"):
        table = process(tmp_path / "s.zarr", resolve_config({"segmentation": {"threshold": {"method": method}},
                                                             "labels": {"write": False}}), progress=False)
        events = table.obs["event_index"].to_numpy()
        found[method] = (len(set(events[events < 40])), len(set(events[events >= 40])))
    assert found["background"][0] == 40  # every cell
    assert found["background"][1] <= 2  # >= 95 % of the noise-only events have no object
    assert found["otsu"][1] >= 30  # what a per-event Otsu does with noise
    # each cell's mask holds its whole drawn nucleus and reaches at most 3 px beyond it (the smoothing's rim:
    # the blurred edge still departs from the background by more than k noise units there)
    from scipy import ndimage as ndi

    process(tmp_path / "s.zarr", resolve_config({"segmentation": {"threshold": {"method": "background"}}}),
            progress=False)
    st = open_store(tmp_path / "s.zarr")
    lab = zarr.open_array(str(tmp_path / "s.zarr" / "labels" / "cells" / "s0"))[:]
    rows, cols = st.mosaic.tile_position(np.arange(40))
    for i, nucleus in enumerate(truth["nucleus"]):
        ours = lab[rows[i] * 40:(rows[i] + 1) * 40, cols[i] * 40:(cols[i] + 1) * 40] > 0
        assert ours[nucleus].all()
        assert not (ours & ~ndi.binary_dilation(nucleus, iterations=3)).any()


def test_background_refuses_a_dataset_scope(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((4, 1, 20, 20), np.uint16))
    scipzarr.convert([tmp_path / "e.npy"], tmp_path / "s.zarr", progress=False)
    with pytest.raises(scipzarr.ScipzarrError, match="scope event"):
        process(tmp_path / "s.zarr", resolve_config({"segmentation": {"threshold": {"method": "background",
                                                                                    "scope": "dataset"}}}),
                progress=False)
