"""From a RobotState to the network's action, using nothing but the contract and the robots package.

ObservationPipeline builds each frame with robolearn.robots.build_observation (the function the
training envs call), stacks history_length frames oldest first, and normalises with the contract's
statistics. OnnxPolicy runs the network with onnxruntime on one thread: a deploy loop wants one
predictable core, not a thread pool spinning beside the control loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.deploy.artifact import PolicyContract
from robolearn.errors import UserError, require
from robolearn.robots.observations import build_observation
from robolearn.robots.state import RobotState


class ObservationPipeline:
    """Frame -> history -> normalisation, exactly as contract.json describes."""

    def __init__(self, contract: PolicyContract) -> None:
        self.contract = contract
        self.spec = contract.robot
        self.terms = contract.terms
        self.frame_size = contract.frame_size
        self._history = np.zeros((contract.history_length, self.frame_size), dtype=np.float32)
        self._filled = False

    def reset(self) -> None:
        """Forget the history (a new POLICY segment starts with the first frame repeated)."""
        self._filled = False

    def frame(self, state: RobotState) -> np.ndarray:
        """One observation frame (float32), as the training env builds it without noise."""
        return build_observation(state, self.spec, self.terms, rng=None, clip=self.contract.obs_clip)

    def __call__(self, state: RobotState) -> tuple[np.ndarray, np.ndarray]:
        """(frame, network input of shape (1, input_size), float32)."""
        frame = self.frame(state)
        if not self._filled:
            self._history[:] = frame
            self._filled = True
        else:
            self._history[:-1] = self._history[1:]
            self._history[-1] = frame
        stacked = self._history.reshape(-1)
        norm = self.contract.normalization
        x = stacked if norm is None else norm.apply(stacked)
        return frame, np.asarray(x, dtype=np.float32).reshape(1, -1)


def _graph_size(shape: Sequence[Any]) -> int | None:
    """The last dimension of a graph input or output, or None when it is symbolic."""
    last = shape[-1] if shape else None
    return last if isinstance(last, int) else None


def check_graph(
    path: Path,
    contract: PolicyContract,
    input_shape: Sequence[Any],
    input_type: str,
    output_shape: Sequence[Any],
    output_type: str,
) -> None:
    """The graph's input and output (onnxruntime's get_inputs/get_outputs) agree with the contract.

    Each must be a float tensor of rank 2, (batch, size); the input size must equal the contract's
    network.input_size and what its observation terms x history build, the output size the
    network.output_size and the robot's joint count. UserError naming the field otherwise.
    """
    net = contract.network
    where = f"{path.parent / 'contract.json'}"
    for role, shape, kind in (("input", input_shape, input_type), ("output", output_shape, output_type)):
        name = net[role]
        if kind != "tensor(float)":
            raise UserError(
                f"{path}: the graph's {role} '{name}' is {kind}; the runtime feeds and reads tensor(float)"
            )
        if len(shape) != 2:
            raise UserError(
                f"{path}: the graph's {role} '{name}' has shape {list(shape)}; expected [batch, size]"
            )
    checks = (
        ("input", net.get("input_size"), _graph_size(input_shape), contract.input_size, "observation builds"),
        ("output", net.get("output_size"), _graph_size(output_shape), contract.robot.num_joints, "robot has"),
    )
    for role, declared, graph, built, built_what in checks:
        if graph is not None and graph != built:
            raise UserError(
                f"{path}: the graph's {role} has {graph} values, the contract's {built_what} {built}; re-export the policy"
            )
        actual = graph if graph is not None else built
        if declared is not None and int(declared) != actual:
            raise UserError(
                f"{where}: network.{role}_size = {declared} is not allowed; the graph in {path.name} has"
                f" {actual} {role} values (re-export the policy)"
            )


class OnnxPolicy:
    """An ONNX network on onnxruntime's CPU provider, single-threaded, with its sizes checked."""

    def __init__(self, path: Path, contract: PolicyContract, threads: int = 1) -> None:
        ort = require("onnxruntime", "running a policy artifact", "deploy")
        options = ort.SessionOptions()  # type: ignore[attr-defined]
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        # Idle onnxruntime workers spin by default, taking a core from the control loop.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # type: ignore[attr-defined]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise UserError(f"{path} cannot be loaded by onnxruntime ({type(exc).__name__}: {exc})") from None
        net = contract.network
        self.input_name = str(net["input"])
        self.output_name = str(net["output"])
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if self.input_name not in inputs or self.output_name not in outputs:
            raise UserError(
                f"{path}: the contract names input '{self.input_name}' and output '{self.output_name}', the network has"
                f" inputs {sorted(inputs)} and outputs {sorted(outputs)}"
            )
        check_graph(
            path,
            contract,
            inputs[self.input_name].shape,
            inputs[self.input_name].type,
            outputs[self.output_name].shape,
            outputs[self.output_name].type,
        )
        self._feed: dict[str, np.ndarray] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Actions (float64, one per joint) for a (1, input_size) float32 input."""
        self._feed[self.input_name] = x
        out = self.session.run([self.output_name], self._feed)[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)
