"""Haralick texture equals CellProfiler's (cp_measure) on generated objects and real cells."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label
from skimage.util import img_as_ubyte

from scipzarr.features import texture
from scipzarr.features.objects import Objects


def _measure_texture(obj, q, distance=3):
    """All four directions at one distance: ``{f"{Feature}_{distance}_{dir:02d}": values}`` (CellProfiler's
    names, as cp_measure gives them)."""
    res = texture.haralick(obj, q, distance)
    return {f"{name}_{distance}_{d:02d}": res[:, d, k] for d in range(4) for k, name in enumerate(texture.NAMES)}

cp_texture = pytest.importorskip("cp_measure.core.measuretexture")


def _objects(seed, n=6, size=48):
    rng = np.random.default_rng(seed)
    local = np.zeros((n, size, size), np.int32)
    img = np.zeros((n, size, size))
    for e in range(n):
        m = ndi.gaussian_filter(rng.random((size, size)), 3) > 0.52
        local[e] = label(m)
        img[e] = np.clip(ndi.gaussian_filter(rng.random((size, size)), 1.2) * 2 - 0.4, 0, 1)
    return local, img


@pytest.mark.parametrize("seed,distance", [(0, 3), (1, 5), (2, 1)])
def test_equal_to_cp_measure(seed, distance):
    local, img = _objects(seed)
    q = img_as_ubyte(img)
    obj = Objects(local, np.zeros(len(local), int), np.zeros(len(local), int))
    ours = _measure_texture(obj, q, distance)
    k = 0
    checked = 0
    for e in range(len(local)):
        ref = cp_texture.get_texture(local[e], img[e], scale=distance, gray_levels=256)
        n = local[e].max()
        for name, values in ref.items():
            feat, scale, direction, levels = name.rsplit("_", 3)
            mine = ours[f"{feat}_{scale}_{direction}"][k:k + n]
            np.testing.assert_allclose(mine, np.asarray(values, float), rtol=1e-6, atol=1e-9, err_msg=name)
            checked += np.isfinite(mine).sum()
        k += n
    assert k == obj.n > 10 and checked > 1000


def test_equal_to_cp_measure_on_real_jurkat_cells(jurkat):
    import tifffile

    from scipzarr.kernels import segment as seg
    from scipzarr.kernels import threshold as thr_k

    files = sorted((jurkat / "single_cells" / "G2").glob("*_Ch4.tif"))[:12]
    dna = np.stack([tifffile.imread(f) for f in files]).astype(np.float64)
    img = dna / dna.max()
    valid = np.ones(img.shape, bool)
    sm = seg.smooth(img, valid, 1.0)
    local, counts = seg.segment(sm, valid, thr_k.threshold_otsu(sm, valid), keep="largest")
    assert counts.tolist() == [1] * 12
    obj = Objects(local, np.zeros(12, int), np.zeros(12, int))
    ours = _measure_texture(obj, img_as_ubyte(img), 3)
    for e in range(12):
        ref = cp_texture.get_texture(local[e], img[e], scale=3, gray_levels=256)
        for name, values in ref.items():
            feat, scale, direction, _ = name.rsplit("_", 3)
            np.testing.assert_allclose(ours[f"{feat}_{scale}_{direction}"][e], values[0], rtol=1e-6, err_msg=name)


def test_quantize_on_the_cameras_bit_depth():
    """10-bit values stored as uint16: CellProfiler's dtype scale leaves them 4 of 256 grey levels; on the
    camera's scale (a .cif states CameraBitsPerPixel) they use all of them."""
    v = np.array([0, 1, 511, 1023], np.uint16)
    assert texture.quantize(v).tolist() == [0, 0, 2, 4]
    assert texture.quantize(v, bit_depth=10).tolist() == [0, 0, 127, 255]
    assert texture.quantize(v, 16, bit_depth=10).tolist() == [0, 0, 7, 15]
    assert texture.quantize(v.astype(np.float64) / 1023, bit_depth=10).tolist() == [0, 0, 127, 255]  # floats: as is


def test_a_cif_store_measures_texture_on_the_cameras_scale(cif, tmp_path):
    import scipzarr
    from scipzarr.config import resolve_config
    from scipzarr.pipeline import process

    scipzarr.convert([cif], tmp_path / "s.zarr", progress=False)
    t = process(tmp_path / "s.zarr", resolve_config({"features": {"families": ["texture"]}, "labels": {"write": False}}),
                progress=False)
    assert t.var.loc["texture_contrast_3_00_Ch5", "parameters"] == "distance=3 direction=0 levels=256 bit_depth=10"
    # brightfield around 220 of 1023: level ~55 of 255, not ~1 of 255 (where every contrast is 0 or 1)
    assert t.to_df()["texture_contrast_3_00_Ch5"].median() > 20
