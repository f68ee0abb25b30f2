"""From a RobotState to the network's action, using nothing but the contract and the robots package.

ObservationPipeline builds each frame with robolearn.robots.build_observation (the function the
training envs call) over the contract's policy joints (all joints unless policy_joints restricts and
reorders them), stacks history_length frames oldest first, and normalises with the contract's
statistics. OnnxPolicy runs the network with onnxruntime on one thread: a deploy loop wants one
predictable core, not a thread pool spinning beside the control loop. A recurrent network's state
(network.state) is fed back each call and zeroed by reset().
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
        self.spec = contract.policy_spec  # the policy joints, in the network's order
        self.terms = contract.terms
        self.frame_size = contract.frame_size
        self._history = np.zeros((contract.history_length, self.frame_size), dtype=np.float32)
        self._filled = False

    def reset(self) -> None:
        """Forget the history (a new POLICY segment starts with the first frame repeated)."""
        self._filled = False

    def frame(self, state: RobotState) -> np.ndarray:
        """One observation frame (float32) of a robot-order state, as the training env builds it without noise."""
        return build_observation(
            self.contract.policy_state(state), self.spec, self.terms, rng=None, clip=self.contract.obs_clip
        )

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
    network.output_size and the number of policy joints. UserError naming the field otherwise.
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
        (
            "output",
            net.get("output_size"),
            _graph_size(output_shape),
            contract.action_size,
            "policy joints are",
        ),
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


def check_state_tensors(
    path: Path, contract: PolicyContract, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
) -> None:
    """Each network.state entry names a float graph input and output whose fixed dimensions equal its shape."""
    for entry in contract.recurrent_state:
        for role, name, found in (("input", entry.input, inputs), ("output", entry.output, outputs)):
            if name not in found:
                raise UserError(
                    f"{path}: network.state names {role} '{name}', the graph's {role}s are {sorted(found)};"
                    " re-export the policy"
                )
            node = found[name]
            if node.type != "tensor(float)":
                raise UserError(
                    f"{path}: the graph's state {role} '{name}' is {node.type}; expected tensor(float)"
                )
            shape = list(node.shape)
            fixed = len(shape) == len(entry.shape) and all(
                not isinstance(g, int) or g == d for g, d in zip(shape, entry.shape, strict=True)
            )
            if not fixed:
                raise UserError(
                    f"{path}: the graph's state {role} '{name}' has shape {shape}, network.state says"
                    f" {list(entry.shape)}; re-export the policy"
                )
    declared = {e.input for e in contract.recurrent_state} | {str(contract.network["input"])}
    extra = sorted(set(inputs) - declared)
    if extra:
        raise UserError(
            f"{path}: the graph has inputs {extra} that the contract does not feed (a recurrent network lists"
            " them in network.state); re-export the policy"
        )


class OnnxPolicy:
    """An ONNX network on onnxruntime's CPU provider, single-threaded, with its sizes checked.

    A recurrent network (network.state) gets its state tensors fed with the previous call's outputs,
    zeros after construction and after reset().
    """

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
        check_state_tensors(path, contract, inputs, outputs)
        self.state = contract.recurrent_state
        self._outputs = [self.output_name, *(e.output for e in self.state)]
        self._feed: dict[str, np.ndarray] = {}
        self.reset()

    def reset(self) -> None:
        """Zero the recurrent state (a new POLICY segment); nothing to do for a feed-forward network."""
        for entry in self.state:
            self._feed[entry.input] = np.zeros(entry.shape, dtype=np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Actions (float64, one per policy joint, network order) for a (1, input_size) float32 input."""
        self._feed[self.input_name] = x
        out = self.session.run(self._outputs, self._feed)
        for entry, value in zip(self.state, out[1:], strict=True):
            self._feed[entry.input] = value
        return np.asarray(out[0], dtype=np.float64).reshape(-1)
