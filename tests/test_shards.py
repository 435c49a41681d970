"""Job arrays without MPI: ``process --shard I/N`` parts merged give the table (and labels) of one run."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import zarr

import scipzarr
from scipzarr.config import resolve_config
from scipzarr.errors import ScipzarrError
from scipzarr.pipeline import process
from scipzarr.pipeline.merge import merge

from .conftest import flat_events


def _ifc_store(tmp_path, n=150):
    events, _ = flat_events(n, size=32, channels=2, seed=4)
    np.save(tmp_path / "e.npy", events)
    scipzarr.convert([tmp_path / "e.npy"], tmp_path / "s.zarr", chunk_tiles=3, progress=False)
    return tmp_path / "s.zarr"


def _same_tables(a: ad.AnnData, b: ad.AnnData) -> None:
    pd.testing.assert_frame_equal(a.obs, b.obs)
    pd.testing.assert_frame_equal(a.var, b.var)
    np.testing.assert_array_equal(a.X, b.X)
    for key in ("objects", "features", "events", "events_without_objects", "events_rejected", "fovs"):
        assert a.uns["scipzarr"].get(key) == b.uns["scipzarr"].get(key), key


@pytest.mark.parametrize("n", [2, 3])
def test_ifc_shards_merge_to_the_single_run_table_and_labels(tmp_path, n):
    store = _ifc_store(tmp_path)
    config = resolve_config({"features": {"families": ["shape", "intensity", "texture"]},
                             "segmentation": {"threshold": {"scope": "dataset"}}})
    ref = process(store, config, tmp_path / "ref.h5ad", progress=False)
    ref_labels = zarr.open_array(str(store / "labels" / "cells" / "s0"))[:]
    zarr.open_group(str(store / "labels"), mode="r")  # the single run's labels exist
    import shutil

    shutil.rmtree(store / "labels")
    parts = [tmp_path / f"p{i}.h5ad" for i in range(n)]
    for i in reversed(range(n)):  # any order
        part = process(store, config, parts[i], progress=False, shard=f"{i}/{n}")
        assert 0 < part.n_obs < ref.n_obs
    merged = merge(parts, tmp_path / "t.h5ad")
    _same_tables(merged, ref)
    _same_tables(ad.read_h5ad(tmp_path / "t.h5ad"), ad.read_h5ad(tmp_path / "ref.h5ad"))
    np.testing.assert_array_equal(zarr.open_array(str(store / "labels" / "cells" / "s0"))[:], ref_labels)
    assert not [p for p in (store / "labels").iterdir() if "shards" in p.name]  # the shared scratch is gone
    assert scipzarr.store.validate_store(store) == []


def test_fov_shards_merge_to_the_single_run_table(tmp_path):
    import tifffile

    from .conftest import nuclei as _nuclei

    for f in range(5):
        tifffile.imwrite(tmp_path / f"f{f}.tif", _nuclei((200, 180), 10, seed=f, touching=0))
    scipzarr.convert(sorted(tmp_path.glob("f*.tif")), tmp_path / "s.zarr", kind="fov", chunk_size=64, progress=False)
    config = resolve_config({"fov": {"whole_max_pixels": 30000}})
    ref = process(tmp_path / "s.zarr", config, tmp_path / "ref.h5ad", progress=False)
    parts = [tmp_path / f"p{i}.h5ad" for i in range(2)]
    for i in range(2):
        process(tmp_path / "s.zarr", config, parts[i], progress=False, shard=f"{i}/2")
    merged = merge(parts, tmp_path / "t.h5ad")
    _same_tables(merged, ref)
    assert merged.uns["scipzarr"]["thresholds"] == ref.uns["scipzarr"]["thresholds"]


def test_merge_refuses_mixed_or_incomplete_parts(tmp_path):
    store = _ifc_store(tmp_path, n=40)
    config = resolve_config({})
    p = [tmp_path / f"p{i}.h5ad" for i in range(3)]
    for i in range(3):
        process(store, config, p[i], progress=False, shard=f"{i}/3")
    with pytest.raises(ScipzarrError, match="missing shards 1/3"):
        merge([p[0], p[2]], tmp_path / "t.h5ad")
    with pytest.raises(ScipzarrError, match="give each part once"):
        merge([p[0], p[0], p[1], p[2]], tmp_path / "t.h5ad")
    other = tmp_path / "q.h5ad"
    process(store, resolve_config({"features": {"families": ["shape"]}}), other, progress=False, shard="1/3")
    with pytest.raises(ScipzarrError, match="config differs"):
        merge([p[0], other, p[2]], tmp_path / "t.h5ad")
    process(store, config, tmp_path / "r.h5ad", progress=False, shard="1/2")
    with pytest.raises(ScipzarrError, match="shards"):
        merge([p[0], tmp_path / "r.h5ad", p[2]], tmp_path / "t.h5ad")
    process(store, config, tmp_path / "whole.h5ad", progress=False)
    with pytest.raises(ScipzarrError, match="not a partial table"):
        merge([tmp_path / "whole.h5ad"], tmp_path / "t.h5ad")
    with pytest.raises(ScipzarrError, match="--shard 3/3"):
        process(store, config, tmp_path / "x.h5ad", progress=False, shard="3/3")
    assert not (tmp_path / "t.h5ad").exists()
