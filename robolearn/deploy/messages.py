"""Unitree low-level messages as numpy records: layouts, CDR wire bytes, CRC, and the remote's bytes.

unitree_sdk2py's IdlStruct classes serialise field by field in Python (120-200 µs per message); at
500 Hz in both directions that is a tenth of a core and most of the loop's jitter. Here a message is
a numpy structured record in the C layout the firmware computes its CRC over, and the CDR bytes on
the wire are one byte permutation away (CDR aligns each primitive to its size from the start of the
payload; C also pads nested structs to their alignment, so the two layouts differ by a few bytes).

Field lists follow unitree_sdk2py's IDL (`unitree_sdk2py/idl/unitree_go|unitree_hg/msg/dds_`);
tests/deploy/test_messages.py checks every layout byte for byte against the SDK's own serialize()
and every CRC against `unitree_sdk2py.utils.crc.CRC`.

The CRC is CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no reflection, no final
xor) over the record's 32-bit little-endian words, each processed most significant bit first,
excluding the final `crc` word. zlib's CRC-32 is the same polynomial run bit-reflected, so feeding
it every word bit-reversed and reflecting its result gives the MPEG-2 value at C speed.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robolearn.errors import UserError


@dataclass(frozen=True)
class Struct:
    """An IDL struct: (field name, primitive numpy code or nested Struct, array length or 0 for a scalar)."""

    name: str
    fields: tuple[tuple[str, str | Struct, int], ...]


# --- unitree_go (Go2): LowCmd_ has 20 motor slots -------------------------------------------------
GO_MOTOR_CMD = Struct(
    "unitree_go.msg.dds_.MotorCmd_",
    (
        ("mode", "u1", 0),
        ("q", "f4", 0),
        ("dq", "f4", 0),
        ("tau", "f4", 0),
        ("kp", "f4", 0),
        ("kd", "f4", 0),
        ("reserve", "u4", 3),
    ),
)
GO_BMS_CMD = Struct("unitree_go.msg.dds_.BmsCmd_", (("off", "u1", 0), ("reserve", "u1", 3)))
GO_LOW_CMD = Struct(
    "unitree_go.msg.dds_.LowCmd_",
    (
        ("head", "u1", 2),
        ("level_flag", "u1", 0),
        ("frame_reserve", "u1", 0),
        ("sn", "u4", 2),
        ("version", "u4", 2),
        ("bandwidth", "u2", 0),
        ("motor_cmd", GO_MOTOR_CMD, 20),
        ("bms_cmd", GO_BMS_CMD, 0),
        ("wireless_remote", "u1", 40),
        ("led", "u1", 12),
        ("fan", "u1", 2),
        ("gpio", "u1", 0),
        ("reserve", "u4", 0),
        ("crc", "u4", 0),
    ),
)
GO_IMU_STATE = Struct(
    "unitree_go.msg.dds_.IMUState_",
    (
        ("quaternion", "f4", 4),
        ("gyroscope", "f4", 3),
        ("accelerometer", "f4", 3),
        ("rpy", "f4", 3),
        ("temperature", "u1", 0),
    ),
)
GO_MOTOR_STATE = Struct(
    "unitree_go.msg.dds_.MotorState_",
    (
        ("mode", "u1", 0),
        ("q", "f4", 0),
        ("dq", "f4", 0),
        ("ddq", "f4", 0),
        ("tau_est", "f4", 0),
        ("q_raw", "f4", 0),
        ("dq_raw", "f4", 0),
        ("ddq_raw", "f4", 0),
        ("temperature", "u1", 0),
        ("lost", "u4", 0),
        ("reserve", "u4", 2),
    ),
)
GO_BMS_STATE = Struct(
    "unitree_go.msg.dds_.BmsState_",
    (
        ("version_high", "u1", 0),
        ("version_low", "u1", 0),
        ("status", "u1", 0),
        ("soc", "u1", 0),
        ("current", "i4", 0),
        ("cycle", "u2", 0),
        ("bq_ntc", "u1", 2),
        ("mcu_ntc", "u1", 2),
        ("cell_vol", "u2", 15),
    ),
)
GO_LOW_STATE = Struct(
    "unitree_go.msg.dds_.LowState_",
    (
        ("head", "u1", 2),
        ("level_flag", "u1", 0),
        ("frame_reserve", "u1", 0),
        ("sn", "u4", 2),
        ("version", "u4", 2),
        ("bandwidth", "u2", 0),
        ("imu_state", GO_IMU_STATE, 0),
        ("motor_state", GO_MOTOR_STATE, 20),
        ("bms_state", GO_BMS_STATE, 0),
        ("foot_force", "i2", 4),
        ("foot_force_est", "i2", 4),
        ("tick", "u4", 0),
        ("wireless_remote", "u1", 40),
        ("bit_flag", "u1", 0),
        ("adc_reel", "f4", 0),
        ("temperature_ntc1", "u1", 0),
        ("temperature_ntc2", "u1", 0),
        ("power_v", "f4", 0),
        ("power_a", "f4", 0),
        ("fan_frequency", "u2", 4),
        ("reserve", "u4", 0),
        ("crc", "u4", 0),
    ),
)

# --- unitree_hg (G1): LowCmd_ has 35 motor slots --------------------------------------------------
HG_MOTOR_CMD = Struct(
    "unitree_hg.msg.dds_.MotorCmd_",
    (
        ("mode", "u1", 0),
        ("q", "f4", 0),
        ("dq", "f4", 0),
        ("tau", "f4", 0),
        ("kp", "f4", 0),
        ("kd", "f4", 0),
        ("reserve", "u4", 0),
    ),
)
HG_LOW_CMD = Struct(
    "unitree_hg.msg.dds_.LowCmd_",
    (
        ("mode_pr", "u1", 0),
        ("mode_machine", "u1", 0),
        ("motor_cmd", HG_MOTOR_CMD, 35),
        ("reserve", "u4", 4),
        ("crc", "u4", 0),
    ),
)
HG_IMU_STATE = Struct(
    "unitree_hg.msg.dds_.IMUState_",
    (
        ("quaternion", "f4", 4),
        ("gyroscope", "f4", 3),
        ("accelerometer", "f4", 3),
        ("rpy", "f4", 3),
        ("temperature", "i2", 0),
    ),
)
HG_MOTOR_STATE = Struct(
    "unitree_hg.msg.dds_.MotorState_",
    (
        ("mode", "u1", 0),
        ("q", "f4", 0),
        ("dq", "f4", 0),
        ("ddq", "f4", 0),
        ("tau_est", "f4", 0),
        ("temperature", "i2", 2),
        ("vol", "f4", 0),
        ("sensor", "u4", 2),
        ("motorstate", "u4", 0),
        ("reserve", "u4", 4),
    ),
)
HG_LOW_STATE = Struct(
    "unitree_hg.msg.dds_.LowState_",
    (
        ("version", "u4", 2),
        ("mode_pr", "u1", 0),
        ("mode_machine", "u1", 0),
        ("tick", "u4", 0),
        ("imu_state", HG_IMU_STATE, 0),
        ("motor_state", HG_MOTOR_STATE, 35),
        ("wireless_remote", "u1", 40),
        ("reserve", "u4", 4),
        ("crc", "u4", 0),
    ),
)

# CDR encapsulation header: XCDR1, little-endian (what cyclonedds writes for these final types).
CDR_LE_HEADER = b"\x00\x01\x00\x00"

_BIT_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _numpy_dtype(s: Struct) -> np.dtype:
    items: list[Any] = []
    for name, kind, count in s.fields:
        base = _numpy_dtype(kind) if isinstance(kind, Struct) else np.dtype("<" + kind)
        items.append((name, base, (count,)) if count else (name, base))
    # align=True reproduces the C compiler's layout, which is what the firmware's CRC covers.
    return np.dtype(items, align=True)


def _cdr_spans(s: Struct, c_base: int, cursor: int, out: list[tuple[int, int, int]]) -> int:
    """Append (C offset, CDR offset, bytes) for each primitive run of s; return the CDR cursor."""
    dt = _numpy_dtype(s)
    for name, kind, count in s.fields:
        c_off = c_base + int(dt.fields[name][1])  # type: ignore[index]
        n = max(count, 1)
        if isinstance(kind, Struct):
            size = _numpy_dtype(kind).itemsize
            for i in range(n):
                cursor = _cdr_spans(kind, c_off + i * size, cursor, out)
        else:
            size = np.dtype(kind).itemsize
            cursor = -(-cursor // size) * size  # CDR aligns a primitive to its own size
            out.append((c_off, cursor, size * n))
            cursor += size * n
    return cursor


def _reflect32(value: int) -> int:
    r = _BIT_REVERSE
    return (
        (r[value & 0xFF] << 24)
        | (r[(value >> 8) & 0xFF] << 16)
        | (r[(value >> 16) & 0xFF] << 8)
        | r[value >> 24]
    )


class MessageCodec:
    """Encode/decode one message type between numpy records (C layout) and CDR wire bytes, with CRC."""

    def __init__(self, layout: Struct) -> None:
        self.layout = layout
        self.typename = layout.name
        self.dtype = _numpy_dtype(layout)
        c_size = self.dtype.itemsize
        spans: list[tuple[int, int, int]] = []
        payload = _cdr_spans(layout, 0, 0, spans)
        payload_padded = -(-payload // 4) * 4
        self.wire_size = len(CDR_LE_HEADER) + payload_padded
        # Permutations through one extra zero byte at the end, which every padding byte copies.
        self._c_from_wire = np.full(c_size, payload_padded, dtype=np.intp)
        self._wire_from_c = np.full(payload_padded, c_size, dtype=np.intp)
        for c_off, w_off, size in spans:
            self._c_from_wire[c_off : c_off + size] = np.arange(w_off, w_off + size)
            self._wire_from_c[w_off : w_off + size] = np.arange(c_off, c_off + size)
        self._c_ext = np.zeros(c_size + 1, dtype=np.uint8)
        self._w_ext = np.zeros(payload_padded + 1, dtype=np.uint8)
        self._crc_words = (c_size - 4) // 4
        # numpy leaves the padding of a copied structured array uninitialised, and the firmware counts
        # padding as zeros, so the CRC masks it out rather than trusting the record's bytes.
        self._data_mask = np.zeros(4 * self._crc_words, dtype=np.uint8)
        for c_off, _, size in spans:
            self._data_mask[c_off : min(c_off + size, len(self._data_mask))] = 0xFF

    def new(self) -> np.ndarray:
        """A zeroed record (shape ())."""
        return np.zeros((), dtype=self.dtype)

    def encode(self, record: np.ndarray) -> bytes:
        """CDR wire bytes (encapsulation header included) of a record."""
        self._c_ext[:-1] = np.frombuffer(record.tobytes(), dtype=np.uint8)
        return CDR_LE_HEADER + self._c_ext[self._wire_from_c].tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        """A record from CDR wire bytes; UserError if the bytes cannot be this message."""
        if len(data) < self.wire_size or data[:2] != CDR_LE_HEADER[:2]:
            raise UserError(
                f"{self.typename}: expected {self.wire_size} bytes of little-endian CDR, got {len(data)}"
                f" starting {data[:4].hex()}"
            )
        self._w_ext[:-1] = np.frombuffer(data, dtype=np.uint8, count=self.wire_size - 4, offset=4)
        return np.frombuffer(bytearray(self._w_ext[self._c_from_wire].tobytes()), dtype=self.dtype).reshape(
            ()
        )

    def crc(self, record: np.ndarray) -> int:
        """The CRC Unitree's firmware expects in record['crc']."""
        words = np.frombuffer(record.tobytes(), dtype=np.uint8, count=4 * self._crc_words) & self._data_mask
        # Bit-reverse each 32-bit word: reverse its bytes, then the bits of each byte.
        reflected = words.reshape(-1, 4)[:, ::-1].tobytes().translate(_BIT_REVERSE)
        return _reflect32(zlib.crc32(reflected) ^ 0xFFFFFFFF)

    def seal(self, record: np.ndarray) -> None:
        """Write the CRC into the record."""
        record["crc"] = self.crc(record)

    def crc_ok(self, record: np.ndarray) -> bool:
        """True when the record's crc field matches its content."""
        return int(record["crc"]) == self.crc(record)


@dataclass(frozen=True)
class MessageFamily:
    """The LowCmd/LowState pair of one Unitree message family and the SDK classes carrying them."""

    name: str
    low_cmd: MessageCodec
    low_state: MessageCodec
    num_motor_slots: int
    enabled_mode: int  # motor_cmd[i].mode that enables a motor (servo/FOC mode)

    def sdk_types(self) -> tuple[Any, Any]:
        """(LowCmd_, LowState_) IdlStruct classes of unitree_sdk2py, for DDS topic registration."""
        from robolearn.errors import require

        require("unitree_sdk2py", "DDS deploy", "deploy", "unitree-sdk2py-dimos")
        if self.name == "unitree_go":
            from unitree_sdk2py.idl.unitree_go.msg.dds_ import LowCmd_, LowState_
        else:
            from unitree_sdk2py.idl.unitree_hg.msg.dds_ import LowCmd_, LowState_
        return LowCmd_, LowState_


# Go2 motors run in servo (PMSM) mode 0x01 (unitree_sdk2_python example/go2/low_level); the G1's
# mode 1 is "enable" (example/g1/low_level). Mode 0 leaves a motor unpowered.
FAMILIES: dict[str, MessageFamily] = {
    "unitree_go": MessageFamily("unitree_go", MessageCodec(GO_LOW_CMD), MessageCodec(GO_LOW_STATE), 20, 0x01),
    "unitree_hg": MessageFamily("unitree_hg", MessageCodec(HG_LOW_CMD), MessageCodec(HG_LOW_STATE), 35, 0x01),
}


def message_family(name: str) -> MessageFamily:
    """The family a RobotSpec names in message_family."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise UserError(f"unknown message family '{name}'; known: {', '.join(FAMILIES)}") from None


# --- Wireless remote ---------------------------------------------------------------------------------
# LowState.wireless_remote (40 bytes): 2 header bytes, a little-endian uint16 of buttons, then float32
# sticks lx, rx, ry at bytes 4, 8, 12, the L2 trigger at 16 and ly at 20 (Unitree's
# xRockerBtnDataStruct; unitree_rl_gym deploy_real/common/remote_controller.py reads the same bytes).
BUTTONS: tuple[str, ...] = (
    "R1", "L1", "start", "select", "R2", "L2", "F1", "F2", "A", "B", "X", "Y", "up", "right", "down", "left",
)  # fmt: skip
STICKS: dict[str, int] = {"lx": 4, "rx": 8, "ry": 12, "ly": 20}


@dataclass(frozen=True)
class RemoteState:
    """Buttons held and stick positions (each in [-1, 1]) of Unitree's wireless remote."""

    buttons: frozenset[str] = frozenset()
    lx: float = 0.0
    ly: float = 0.0
    rx: float = 0.0
    ry: float = 0.0

    @classmethod
    def from_bytes(cls, data: bytes | Sequence[int] | np.ndarray) -> RemoteState:
        """Parse the 40 wireless_remote bytes of a LowState."""
        raw = bytes(np.asarray(data, dtype=np.uint8).tobytes()) if not isinstance(data, bytes) else data
        if len(raw) < 24:
            raise UserError(f"wireless_remote needs 24+ bytes, got {len(raw)}")
        bits = struct.unpack_from("<H", raw, 2)[0]
        held = frozenset(name for i, name in enumerate(BUTTONS) if bits >> i & 1)
        sticks = {name: struct.unpack_from("<f", raw, offset)[0] for name, offset in STICKS.items()}
        return cls(held, **sticks)

    def to_bytes(self) -> bytes:
        """The 40 wireless_remote bytes a robot would publish for this state."""
        unknown = set(self.buttons) - set(BUTTONS)
        if unknown:
            raise UserError(
                f"unknown remote button(s) {', '.join(sorted(unknown))}; buttons: {', '.join(BUTTONS)}"
            )
        raw = bytearray(40)
        struct.pack_into("<H", raw, 2, sum(1 << i for i, name in enumerate(BUTTONS) if name in self.buttons))
        for name, offset in STICKS.items():
            struct.pack_into("<f", raw, offset, float(getattr(self, name)))
        return bytes(raw)
