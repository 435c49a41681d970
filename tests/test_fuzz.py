"""Property-based fuzzing of the converters: random shapes, types and byte corruptions
must end in either a valid store or one clean ScipzarrError with no partial output."""

import numpy as np
import tifffile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipzarr.converters import convert

from scipzarr import store
from scipzarr.errors import ScipzarrError

event = st.tuples(
    st.integers(1, 3),                                   # channels
    st.integers(1, 24), st.integers(1, 24),              # height, width
    st.sampled_from(["uint8", "uint16", "float32"]),
)
corruption = st.one_of(
    st.none(),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event, min_size=1, max_size=4), bad=st.lists(corruption, min_size=1, max_size=4),
       on_error=st.sampled_from(["fail", "skip"]), seed=st.integers(0, 2**16))
# found by this test: a flipped byte made a header claim 58,625 channels (now rejected, not stored)
@example(events=[(1, 15, 6, "uint8"), (1, 1, 1, "uint8")],
         bad=[("flip", [(0.5, 0), (0.2997160042686358, 229), (0.17232352989451097, 0)])], on_error="skip", seed=0)
def test_converters_end_in_a_valid_store_or_a_clean_error(tmp_path_factory, events, bad, on_error, seed):
    tmp = tmp_path_factory.mktemp("fuzz")
    src = tmp / "in"
    src.mkdir()
    rng = np.random.default_rng(seed)
    for i, (c, h, w, dtype) in enumerate(events):
        img = (rng.random((c, h, w)) * 200).astype(dtype)
        path = src / f"ev{i}.tif"
        tifffile.imwrite(path, img if c > 1 else img[0])
        op = bad[i % len(bad)]
        if op is not None:
            data = bytearray(path.read_bytes())
            if op[0] == "truncate":
                data = data[: int(op[1] * len(data))]
            else:
                for pos, val in op[1]:
                    data[min(int(pos * len(data)), len(data) - 1)] = val
            path.write_bytes(bytes(data))
    out = tmp / "o.zarr"
    try:
        res = convert([src], out, chunk_tiles=2, on_error=on_error, progress=False)
    except ScipzarrError as exc:
        assert "\n" not in str(exc) and str(exc)
        assert not out.exists()
        assert [p for p in tmp.iterdir() if p.name.startswith(".o.zarr")] == []
        return
    assert store.validate_store(out) == []
    st_ = store.open_store(out)
    assert res["events"] == len(st_.events)
    # nothing dropped silently: every input file is an event or a rejected event
    assert len(st_.events) + len(set(st_.rejected()["event_id"]) - set(st_.events["event_id"])) == len(events)
