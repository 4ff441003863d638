import os
import pickle

import numpy as np
import pytest

from egoworld.data.safe_pickle import UnsafePickleError, safe_load, safe_loads


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Custom:
    pass


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_round_trips(protocol):
    data = {"position": np.random.rand(4, 2), "yaw": np.arange(4, dtype=np.float32), "n": [1, 2.5, "x", None]}
    back = safe_loads(pickle.dumps(data, protocol=protocol))
    np.testing.assert_array_equal(back["position"], data["position"])
    assert back["yaw"].dtype == np.float32 and back["n"] == data["n"]


def test_code_running_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "traj_data.pkl"
    path.write_bytes(pickle.dumps({"position": _RunsCode(marker)}))
    with pytest.raises(UnsafePickleError, match=r"traj_data.pkl: .*system"):
        safe_load(path)
    assert not marker.exists()


def test_other_objects_and_garbage_refused():
    with pytest.raises(UnsafePickleError, match="_Custom"):
        safe_loads(pickle.dumps(_Custom()))
    with pytest.raises(UnsafePickleError, match="not a readable pickle"):
        safe_loads(b"\x80\x04garbage")
    # an object-dtype array smuggling a custom object is refused too
    with pytest.raises(UnsafePickleError):
        safe_loads(pickle.dumps(np.array([_Custom()], dtype=object)))
