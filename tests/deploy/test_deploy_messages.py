"""Message codec: byte-exact against unitree_sdk2py's serialize(), CRC against its CRC, remote bytes."""

from __future__ import annotations

import struct

import numpy as np
import pytest

pytest.importorskip("unitree_sdk2py")

from unitree_sdk2py.idl import default as sdk_default
from unitree_sdk2py.utils.crc import CRC

from robolearn.deploy.messages import BUTTONS, FAMILIES, RemoteState
from robolearn.errors import UserError

FACTORIES = {
    ("unitree_go", "low_cmd"): sdk_default.unitree_go_msg_dds__LowCmd_,
    ("unitree_go", "low_state"): sdk_default.unitree_go_msg_dds__LowState_,
    ("unitree_hg", "low_cmd"): sdk_default.unitree_hg_msg_dds__LowCmd_,
    ("unitree_hg", "low_state"): sdk_default.unitree_hg_msg_dds__LowState_,
}


def _randomise(obj: object, rng: np.random.Generator) -> None:
    """Fill every field of an SDK message with random values of its type (recursively)."""
    for name, kind in type(obj).__annotations__.items():
        value = getattr(obj, name)
        text = str(kind)
        if hasattr(value, "__annotations__") and not isinstance(value, list):
            _randomise(value, rng)
        elif isinstance(value, list) and value and hasattr(value[0], "__annotations__"):
            for item in value:
                _randomise(item, rng)
        elif isinstance(value, list):
            setattr(obj, name, [_random_scalar(text, rng) for _ in value])
        else:
            setattr(obj, name, _random_scalar(text, rng))


def _random_scalar(kind: str, rng: np.random.Generator) -> float | int:
    if "float" in kind:
        return float(np.float32(rng.normal() * 3))
    for bits, signed in ((8, "int8"), (16, "int16"), (32, "int32")):
        if f"uint{bits}" in kind:
            # The SDK's CRC packs some unsigned fields (temperatures, fan speeds) as signed ones and
            # fails past the signed maximum, so the reference only takes the lower half.
            return int(rng.integers(0, 2 ** (bits - 1)))
        if signed in kind:
            return int(rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1)))
    raise AssertionError(kind)


@pytest.mark.parametrize("family,message", list(FACTORIES), ids=lambda x: str(x))
def test_codec_matches_the_sdk_byte_for_byte_and_crc(family: str, message: str) -> None:
    codec = getattr(FAMILIES[family], message)
    rng = np.random.default_rng(0)
    for _ in range(5):
        msg = FACTORIES[(family, message)]()
        _randomise(msg, rng)
        msg.crc = CRC().Crc(msg)
        wire = msg.serialize()
        rec = codec.decode(wire)
        assert codec.encode(rec) == wire
        assert len(wire) == codec.wire_size
        assert codec.crc(rec) == msg.crc and codec.crc_ok(rec)
        rec["crc"] = int(rec["crc"]) ^ 1
        assert not codec.crc_ok(rec)


def test_crc_ignores_uninitialised_padding() -> None:
    codec = FAMILIES["unitree_go"].low_cmd
    rec = codec.new()
    rec["motor_cmd"]["q"][:] = 0.5
    copy = rec.copy()  # numpy leaves the padding of a structured copy undefined
    assert codec.crc(copy) == codec.crc(rec)


def test_decode_rejects_bytes_of_another_message() -> None:
    go, hg = FAMILIES["unitree_go"], FAMILIES["unitree_hg"]
    with pytest.raises(UserError, match="expected 2092 bytes"):
        hg.low_state.decode(go.low_state.encode(go.low_state.new()))


def test_remote_bytes_round_trip_at_unitree_offsets() -> None:
    state = RemoteState(frozenset({"start", "A", "L1"}), lx=0.25, ly=-0.5, rx=1.0, ry=-1.0)
    raw = state.to_bytes()
    assert len(raw) == 40 and RemoteState.from_bytes(raw) == state
    # unitree_rl_gym's remote_controller.py: keys at 2:4, lx 4:8, rx 8:12, ry 12:16, ly 20:24.
    keys = struct.unpack("<H", raw[2:4])[0]
    assert keys == (1 << BUTTONS.index("start")) | (1 << BUTTONS.index("A")) | (1 << BUTTONS.index("L1"))
    assert struct.unpack("<f", raw[4:8])[0] == 0.25 and struct.unpack("<f", raw[20:24])[0] == -0.5
    assert struct.unpack("<f", raw[8:12])[0] == 1.0 and struct.unpack("<f", raw[12:16])[0] == -1.0
    with pytest.raises(UserError, match="unknown remote button"):
        RemoteState(frozenset({"Z"})).to_bytes()
