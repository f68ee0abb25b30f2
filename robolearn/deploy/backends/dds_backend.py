"""DDS backend: rt/lowstate in, rt/lowcmd out, for a Unitree robot or the MuJoCo sim bridge.

Every command carries its CRC. LowState samples with a wrong CRC are dropped and counted (the
runtime then sees no fresh state and, past the stale threshold, damps). With dry_run no writer is
created at all, so nothing can reach the motors while states are read and commands computed.
"""

from __future__ import annotations

import numpy as np

from robolearn.deploy.backends.base import Backend, StateSample
from robolearn.deploy.commands import MotorCommand
from robolearn.deploy.dds import LOWCMD_TOPIC, LOWSTATE_TOPIC, DdsSession
from robolearn.deploy.messages import message_family
from robolearn.robots.spec import RobotSpec

# Go2 LowCmd header values from unitree_sdk2_python's example/go2/low_level/go2_stand_example.py.
GO_HEAD = (0xFE, 0xEF)
GO_LEVEL_FLAG = 0xFF


class DdsBackend(Backend):
    """Unitree low-level messages over CycloneDDS (robolearn.deploy.dds)."""

    name = "dds"

    def __init__(
        self, spec: RobotSpec, session: DdsSession, dry_run: bool = False, check_crc: bool = True
    ) -> None:
        super().__init__()
        self.spec = spec
        self.session = session
        self.family = message_family(spec.message_family)
        self.check_crc = check_crc
        cmd_type, state_type = self.family.sdk_types()
        # Newest state only: the loop wants the latest, never a queue of old ones.
        self.reader = session.reader(LOWSTATE_TOPIC, state_type, depth=1)
        self.writer = None if dry_run else session.writer(LOWCMD_TOPIC, cmd_type, depth=16)
        self.slots = np.asarray(spec.motor_indices, dtype=np.intp)
        self.mode_machine = 0
        codec = self.family.low_cmd
        self.record = codec.new()
        if self.family.name == "unitree_go":
            self.record["head"] = GO_HEAD
            self.record["level_flag"] = GO_LEVEL_FLAG
        # Spec joints are enabled; other slots stay at mode 0 (unpowered) with zero gains.
        self.record["motor_cmd"]["mode"][self.slots] = self.family.enabled_mode

    def poll_state(self, now: float) -> StateSample | None:
        """The newest LowState that decodes and passes the CRC check."""
        codec = self.family.low_state
        newest = None
        for data in self.reader.take(8):
            try:
                rec = codec.decode(data)
            except Exception:  # a sample of another layout: count it, keep the loop alive
                self.stats.decode_errors += 1
                continue
            if self.check_crc and not codec.crc_ok(rec):
                self.stats.crc_errors += 1
                continue
            newest = rec
        if newest is None:
            return None
        self.stats.states += 1
        motors = newest["motor_state"]
        imu = newest["imu_state"]
        if self.family.name == "unitree_hg":
            self.mode_machine = int(newest["mode_machine"])
        return StateSample(
            joint_pos=motors["q"][self.slots].astype(np.float64),
            joint_vel=motors["dq"][self.slots].astype(np.float64),
            quat=imu["quaternion"].astype(np.float64),
            gyro=imu["gyroscope"].astype(np.float64),
            tick=int(newest["tick"]),
            received=now,
            remote=newest["wireless_remote"].tobytes(),
            mode_machine=self.mode_machine,
        )

    def encode(self, command: MotorCommand) -> bytes:
        """The sealed CDR bytes of the LowCmd for a command."""
        motors = self.record["motor_cmd"]
        motors["q"][self.slots] = command.q
        motors["kp"][self.slots] = command.kp
        motors["kd"][self.slots] = command.kd
        if self.family.name == "unitree_hg":
            # The G1 rejects commands for another hardware variant: echo what its LowState says.
            self.record["mode_machine"] = self.mode_machine
        self.family.low_cmd.seal(self.record)
        return self.family.low_cmd.encode(self.record)

    def send(self, command: MotorCommand) -> None:
        """Publish the command (or only count it in dry-run)."""
        data = self.encode(command)
        self.stats.commands += 1
        if self.writer is not None:
            self.writer.write(data)

    def close(self) -> None:
        """Release the DDS entities."""
        self.session.close()
