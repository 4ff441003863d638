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


# -- tiny pickles that ask for unbounded work or memory ---------------------------------------------


def _shared_dag(levels: int = 30) -> bytes:
    a: list = []
    for _ in range(levels):
        a = [a, a]  # 2**levels leaves through shared references; 60 objects in memory
    return pickle.dumps({"position": a, "yaw": [0.0]})


def _huge_reconstruct() -> bytes:
    # _reconstruct(ndarray, (402653184,), "O"): an 80-byte request for a 3 GB object array
    return (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01"
        b"J\x00\x00\x00\x18\x85q\x02U\x01Oq\x03\x87q\x04Rq\x05."
    )


def _repeated_refs(k: int = 1000, levels: int = 3) -> bytes:
    # level L = [level L-1] * k through memo GETs: k**levels items from ~k*levels instructions
    out = bytearray(b"\x80\x04N\x94")  # None, memo 0
    for lv in range(levels):
        out += b"]\x94(" + (b"h" + bytes([lv])) * k + b"e"  # EMPTY_LIST MEMOIZE MARK GET*k APPENDS
    return bytes(out + b".")


def _array_state(shape_code: bytes, data: bytes) -> bytes:
    # _reconstruct(ndarray, (0,), b"b") then BUILD((1, shape, dtype('f8'), False, data))
    return (
        b"\x80\x04\x8c\x16numpy._core.multiarray\x8c\x0c_reconstruct\x93\x8c\x05numpy\x8c\x07ndarray\x93"
        b"K\x00\x85C\x01b\x87R"
        b"(K\x01" + shape_code + b"\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02f8\x89\x88\x87R"
        b"(K\x03\x8c\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + data + b"tb."
    )


def _dtype_resized_after_use() -> bytes:
    # a V8 dtype gives a 16-byte array its layout, then BUILD tries to make the dtype 100000 bytes
    # wide: numpy would let the array read far past its buffer
    flags = np.dtype("V8").flags
    return (
        b"\x80\x04\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02V8\x89\x88\x87R\x94"
        b"\x8c\x13numpy._core.numeric\x8c\x0b_frombuffer\x93(C\x10"
        + bytes(16)
        + b"h\x00K\x02\x85\x8c\x01CtR\x94"
        b"0h\x00(K\x03\x8c\x01|NNNJ\xa0\x86\x01\x00J\xff\xff\xff\xffK" + bytes([flags]) + b"tb0h\x01."
    )


def _short_scalar() -> bytes:
    # np.float64 rebuilt from 1 byte of data instead of 8
    return pickle.dumps(np.float64(1), protocol=4).replace(b"C\x08" + bytes(6) + b"\xf0?", b"C\x01\x00")


def test_array_state_builder_is_a_valid_pickle():
    ok = _array_state(b"K\x02\x85", b"C\x10" + np.array([1.5, 2.5]).tobytes())
    np.testing.assert_array_equal(safe_loads(ok), [1.5, 2.5])


@pytest.mark.parametrize(
    "data, message",
    [
        (_shared_dag(), "expands to more than"),
        (_huge_reconstruct(), r"declares an array of shape \(402653184,\)"),
        (_repeated_refs(), "expands to more than"),
        (_array_state(b"J\x00\x00\x00\x40\x85", b"C\x10" + bytes(16)), "declares an array of shape"),
        (_array_state(b"J\x00\x00\x10\x00\x85", b"C\x10" + bytes(16)), "gives 16 bytes for an array"),
        (_dtype_resized_after_use(), "only a simple dtype's byte order may be set"),
        (
            b"\x80\x05\x96" + (2**40).to_bytes(8, "little") + b"xx.",
            "1099511627776-byte array in a 14-byte file",
        ),
        (b"\x80\x02cnumpy\nndarray\n(J\x00\x00\x00\x40\x85tR.", "calls 'ndarray'; not allowed"),
        (b"\x80\x02cnumpy\ndtype\nX\x0f\x00\x00\x00(1000000000,)f8\x89\x88\x87R.", "only simple type codes"),
        (b"L" + b"9" * 100_000 + b"L\n.", "not a readable pickle"),
        (_short_scalar(), "scalar with data"),
    ],
    ids=[
        "shared-dag",
        "reconstruct-3GB",
        "memo-repeat",
        "state-shape",
        "state-short",
        "dtype-resize",
        "bytearray8-2TB",
        "ndarray-call",
        "subarray-dtype",
        "long-decimal",
        "scalar-short",
    ],  # fmt: skip
)
def test_tiny_expensive_pickles_refused_with_bounded_work(data, message, watchdog):
    import tracemalloc

    assert len(data) < 110_000
    tracemalloc.start()
    try:
        with pytest.raises(UnsafePickleError, match=message):
            safe_loads(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20  # the 3 GB / 2**30-item requests are never materialised


def test_cycles_and_deep_nesting_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(UnsafePickleError, match="contains itself"):
        safe_loads(pickle.dumps(loop))
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(UnsafePickleError, match="deeper than 64"):
        safe_loads(pickle.dumps(deep))


def test_size_and_instruction_limits(tmp_path, monkeypatch):
    import egoworld.data.untrusted as untrusted

    monkeypatch.setattr(untrusted, "MAX_PICKLE_OPCODES", 100)
    with pytest.raises(UnsafePickleError, match="more than 100 instructions"):
        safe_loads(pickle.dumps(list(range(200))))
    monkeypatch.setattr(untrusted, "MAX_PICKLE_BYTES", 1000)
    big = tmp_path / "traj_data.pkl"
    big.write_bytes(pickle.dumps(np.zeros(1000)))
    with pytest.raises(UnsafePickleError, match=r"traj_data.pkl: pickle is \d+ bytes; at most 1000"):
        safe_load(big)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_values_of_every_kind_still_load(protocol):
    shared = [1.0, 2.0]
    data = {
        "position": [shared, shared, [3.0, 4.0]],  # shared references are fine when small
        "objects": np.array([np.zeros(2), "x"], dtype=object),
        "scalars": [np.float32(1.5), np.int64(-3), 1 + 2j, b"\x00\xff", "ü", None, True],
        "strings": np.array(["ab", "c"]),
        "big_endian": np.arange(3, dtype=">i4"),
    }
    back = safe_loads(pickle.dumps(data, protocol=protocol))
    assert back["position"] == data["position"] and back["scalars"] == data["scalars"]
    np.testing.assert_array_equal(back["strings"], data["strings"])
    np.testing.assert_array_equal(back["big_endian"], [0, 1, 2])
    assert back["objects"][1] == "x"
