"""Values arriving from outside (drivers, topics) either match their stream or raise StreamShapeError; nothing else."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from robot_stack.data import EpisodeStore, StreamShapeError

DECLARED = {"image": ((8, 8, 3), np.uint8), "state": ((7,), np.float32)}
values = hnp.arrays(dtype=st.sampled_from([np.uint8, np.uint16, np.int64, np.float32, np.float64, np.bool_]),
                    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=9))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.sampled_from(sorted(DECLARED)), value=values,
       stamp=st.floats(allow_nan=True, allow_infinity=True, width=64))
def test_append_accepts_matching_values_and_names_the_stream_otherwise(tmp_path_factory, stream, value, stamp):
    path = tmp_path_factory.mktemp("fuzz") / "store"
    with EpisodeStore.create(path) as store:
        w = store.begin_episode()
        for name, (shape, dtype) in DECLARED.items():
            w.append(name, np.zeros(shape, dtype), 0.0)
        shape, dtype = DECLARED[stream]
        fits = value.shape == shape and np.can_cast(value.dtype, dtype, "same_kind") and np.isfinite(stamp)
        try:
            w.append(stream, value, stamp)
        except StreamShapeError as exc:
            assert not fits and f"stream {stream!r}" in str(exc)
        else:
            assert fits
        w.commit()
        got = store.read_stream(0, stream)["data"]
        assert len(got) == 1 + fits
        if fits:
            assert np.array_equal(got[1], value.astype(dtype), equal_nan=True)   # a NaN reading comes back as NaN
