"""Helpers of the DDS interop and G1 tests: a dds_peer subprocess, random messages, field checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from dds_peer import HEADER_FIELDS, MOTOR_CMD_FIELDS, state_fields
from deploy_helpers import Proc

from robolearn.deploy.backends.base import StateSample
from robolearn.deploy.backends.dds_backend import DdsBackend
from robolearn.deploy.dds import DdsSession
from robolearn.deploy.messages import MessageFamily
from robolearn.robots.registry import get_robot_spec

ROBOT_OF_FAMILY = {"unitree_go": "go2", "unitree_hg": "g1"}


def peer_args(stack: str, family: str, domain: int, *extra: str) -> list[str]:
    """Module and arguments of a tests/deploy/dds_peer.py process (for Proc / the procs fixture)."""
    return ["tests.deploy.dds_peer", "--stack", stack, "--family", family, "--domain", str(domain), *extra]


def runtime_backend(family: str, domain: int) -> DdsBackend:
    """The deploy runtime's DDS backend for the robot of a message family, on loopback."""
    return DdsBackend(get_robot_spec(ROBOT_OF_FAMILY[family]), DdsSession(domain, "lo"))


def poll_states(backend: DdsBackend, seconds: float, first_within: float = 20.0) -> list[StateSample]:
    """Every sample the backend reads in `seconds` after its first one (which must come in time)."""
    deadline = time.monotonic() + first_within
    samples: list[StateSample] = []
    while not samples:
        assert time.monotonic() < deadline, f"no LowState within {first_within} s: {backend.stats}"
        sample = backend.poll_state(time.monotonic())
        if sample is not None:
            samples.append(sample)
        time.sleep(0.002)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sample = backend.poll_state(time.monotonic())
        if sample is not None:
            samples.append(sample)
        time.sleep(0.002)
    return samples


def check_state_sample(sample: StateSample, backend: DdsBackend, mode_machine: int) -> None:
    """A sample carries exactly what dds_peer published, read through the spec's motor slots."""
    family = backend.family.name
    expected = state_fields(family, sample.tick, mode_machine)
    slots = backend.slots
    f32 = np.float32
    np.testing.assert_array_equal(sample.joint_pos, np.asarray(expected["q"], f32)[slots])
    np.testing.assert_array_equal(sample.joint_vel, np.asarray(expected["dq"], f32)[slots])
    np.testing.assert_array_equal(sample.quat, np.asarray(expected["quaternion"], f32))
    np.testing.assert_array_equal(sample.gyro, np.asarray(expected["gyroscope"], f32))
    assert sample.remote == bytes(40)
    assert sample.mode_machine == (mode_machine if family == "unitree_hg" else 0)


def random_low_cmd(family: MessageFamily, rng: np.random.Generator) -> np.ndarray:
    """A sealed LowCmd record with every compared field random (values the SDK's CRC accepts)."""
    codec = family.low_cmd
    rec = codec.new()
    motors = rec["motor_cmd"]
    n = family.num_motor_slots
    motors["mode"] = rng.integers(0, 2, n)
    for name in ("q", "dq", "tau", "kp", "kd"):
        motors[name] = rng.normal(size=n).astype(np.float32) * 10
    if family.name == "unitree_go":
        rec["head"] = (0xFE, 0xEF)
        rec["level_flag"] = rng.integers(0, 128)
    else:
        rec["mode_pr"] = rng.integers(0, 2)
        rec["mode_machine"] = rng.integers(1, 7)
    codec.seal(rec)
    return rec


def check_cmd_fields(fields: dict[str, Any], rec: np.ndarray, family: MessageFamily) -> None:
    """The fields a peer printed are the record's, bit for bit, and its stack accepts the CRC."""
    motors = rec["motor_cmd"]
    for name in MOTOR_CMD_FIELDS:
        got = np.asarray(fields[name], dtype=motors[name].dtype)
        np.testing.assert_array_equal(got, motors[name], err_msg=name)
    for name in HEADER_FIELDS[family.name]:
        np.testing.assert_array_equal(np.asarray(fields[name]), np.asarray(rec[name]), err_msg=name)
    assert fields["crc"] == int(rec["crc"]) == family.low_cmd.crc(rec)
    assert fields["crc_ok"] is True


def send_until_echoed(
    send: Callable[[], None], peer: Proc, q: np.ndarray, timeout: float = 15.0
) -> dict[str, Any]:
    """Send until the peer prints a command with these motor q (a best-effort reader may miss one)."""
    deadline = time.monotonic() + timeout
    while True:
        send()
        time.sleep(0.05)
        for fields in peer.json_lines("cmd"):
            if np.array_equal(np.asarray(fields["q"], dtype=np.float32), q):
                return fields
        assert time.monotonic() < deadline, (
            f"the peer never printed the command; output:\n{peer.text()[-3000:]}"
        )
