"""Deploy logs (write, read, torn tail) and their conversion to Minari datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robolearn.deploy.dataset import episodes_from_log, validate_dataset, write_minari
from robolearn.deploy.recorder import LOG_VERSION, Recorder, read_log
from robolearn.deploy.safety import SafetyState
from robolearn.errors import UserError

POLICY = SafetyState.POLICY.value


def _log(folder: Path, segments: list[tuple[int, int, bool]], n: int = 12, frame: int = 45) -> Path:
    """A synthetic log: policy steps [start, stop) per segment, a fault after the segments marked True."""
    rec = Recorder(
        folder,
        {"contract": {"action": {"clip": 5.0, "size": n}, "robot": {"name": "go2"}}, "created": "now"},
        n,
        frame,
        frame,
        chunk=7,
        buffers=128,  # room for every chunk: the test checks the format, not the writer's pace
    )
    t = 0.0
    for start, stop, faulted in segments:
        for step in range(start, stop):
            t += 0.02
            p = rec.policy.next()
            assert p is not None
            p["t"], p["step"], p["safety"] = t, step, POLICY
            p["policy_input"] = np.full(frame, step, dtype=np.float32)
            p["action_raw"] = np.full(n, -step, dtype=np.float32)
            for k in range(10):
                c = rec.control.next()
                assert c is not None
                c["t"], c["safety"], c["policy_step"] = t + k * 0.002, POLICY, step
        if faulted:
            rec.event(type="fault", t=t + 0.001, reason="stale_state: test")
        t += 1.0
    rec.close({"final_state": "DAMP"})
    assert rec.control.dropped == 0 and rec.policy.dropped == 0
    return folder


def test_log_round_trip_and_torn_tail(tmp_path: Path) -> None:
    folder = _log(tmp_path / "log", [(1, 30, True), (40, 61, False)])
    log = read_log(folder)
    assert log.meta["version"] == LOG_VERSION and log.meta["summary"]["final_state"] == "DAMP"
    assert len(log.policy) == 50 and len(log.control) == 500
    np.testing.assert_array_equal(log.policy["step"][:3], [1, 2, 3])
    assert log.events[0]["type"] == "fault"
    # numpy alone reads a stream, with the dtype the meta file describes
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["streams"]["control"]["dtype"][0] == ["t", "<f8", []]
    with open(folder / "control.bin", "ab") as fh:
        fh.write(b"\x01\x02\x03")  # a killed writer's partial record
    assert len(read_log(folder).control) == 500
    with pytest.raises(UserError, match="not a deploy log"):
        read_log(tmp_path)


def test_episodes_split_on_gaps_and_faults_terminate(tmp_path: Path) -> None:
    log = read_log(_log(tmp_path / "log", [(1, 30, True), (40, 61, False), (70, 71, False)]))
    episodes = episodes_from_log(log)
    assert [len(e.actions) for e in episodes] == [28, 20]  # a 1-step stretch has no transition
    assert [e.terminated for e in episodes] == [True, False]
    np.testing.assert_array_equal(episodes[0].observations[:, 0], np.arange(1, 30))
    np.testing.assert_array_equal(episodes[0].actions[:, 0], -np.arange(1, 29))


def test_minari_dataset_is_valid_and_minari_reads_it(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    folder = _log(tmp_path / "log", [(1, 30, True), (40, 61, False)])
    data = write_minari(folder, tmp_path / "ds", "robolearn/go2-test-v0")
    meta = validate_dataset(data)
    assert meta["total_episodes"] == 2 and meta["total_steps"] == 48
    with pytest.raises(UserError, match="already holds a dataset"):
        write_minari(folder, tmp_path / "ds", "robolearn/go2-test-v0")
    minari = pytest.importorskip("minari")
    dataset = minari.MinariDataset(data)
    assert dataset.total_episodes == 2 and dataset.total_steps == 48
    episodes = list(dataset.iterate_episodes())
    assert episodes[0].observations.shape == (29, 45) and episodes[0].actions.shape == (28, 12)
    assert episodes[0].terminations[-1] and not episodes[0].truncations[-1]
    assert episodes[1].truncations[-1] and not episodes[1].terminations[-1]
    assert dataset.action_space.high[0] == 5.0
