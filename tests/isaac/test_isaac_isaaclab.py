"""Isaac Lab importer: a hand-written env.yaml in Isaac Lab's dump format for a Go2 flat velocity task,
tiny rsl_rl policies saved here the way Isaac Lab and rsl-rl-lib save them, and the imported artifact
run through the deploy pipeline against the source policy on the same robot state."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from rsl_rl.algorithms import PPO
from rsl_rl.models import MLPModel, RNNModel
from tensordict import TensorDict

from robolearn.deploy.artifact import load_artifact
from robolearn.deploy.policy import ObservationPipeline, OnnxPolicy
from robolearn.errors import UserError
from robolearn.isaac.artifact import write_imported_artifact
from robolearn.isaac.isaaclab import breadth_first_joints, import_isaaclab
from robolearn.robots.observations import projected_gravity
from robolearn.robots.registry import get_robot_spec
from robolearn.robots.state import RobotState

# Isaac Lab's articulation order for its Go2 (PhysX, breadth-first): unitree_rl_lab's Go2 deploy.yaml
# joint_ids_map [3, 0, 9, 6, 4, 1, 10, 7, 5, 2, 11, 8] over the SDK's FR, FL, RR, RL motor order.
GO2_ISAACLAB_ORDER = [
    f"{leg}_{part}_joint" for part in ("hip", "thigh", "calf") for leg in ("FL", "FR", "RL", "RR")
]
# unitree_rl_lab's G1 deploy.yaml joint_ids_map over its joint_sdk_names: 23 DoF
# (scripts/stability/logs/.../params/deploy.yaml) and 29 DoF.
G1_23_SDK = (
    [f"left_{j}_joint" for j in ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll")]
    + [f"right_{j}_joint" for j in ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll")]
    + ["waist_yaw_joint", "", ""]
    + [f"left_{j}_joint" for j in ("shoulder_pitch", "shoulder_roll", "shoulder_yaw", "elbow", "wrist_roll")]
    + ["", ""]
    + [f"right_{j}_joint" for j in ("shoulder_pitch", "shoulder_roll", "shoulder_yaw", "elbow", "wrist_roll")]
)
G1_23_IDS = [0, 6, 12, 1, 7, 15, 22, 2, 8, 16, 23, 3, 9, 17, 24, 4, 10, 18, 25, 5, 11, 19, 26]
_ARM = ("shoulder_pitch", "shoulder_roll", "shoulder_yaw", "elbow", "wrist_roll", "wrist_pitch", "wrist_yaw")
G1_29_SDK = (
    [f"left_{j}_joint" for j in ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll")]
    + [f"right_{j}_joint" for j in ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll")]
    + ["waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint"]
    + [f"left_{j}_joint" for j in _ARM]
    + [f"right_{j}_joint" for j in _ARM]
)
G1_29_IDS = [
    0,
    6,
    12,
    1,
    7,
    13,
    2,
    8,
    14,
    3,
    9,
    15,
    22,
    4,
    10,
    16,
    23,
    5,
    11,
    17,
    24,
    18,
    25,
    19,
    26,
    20,
    27,
    21,
    28,
]

# Isaac Lab's dump of a Go2 flat velocity env cfg (isaaclab_tasks locomotion/velocity, UNITREE_GO2_CFG),
# trimmed to what the importer reads plus some of what it must skip; per-joint dicts where Isaac Lab
# allows them so that a value landing on the wrong joint shows.
GO2_ENV_YAML = """\
viewer:
  eye: !!python/tuple
  - 7.5
  - 7.5
  - 7.5
  origin_type: world
sim:
  physics_prim_path: /physicsScene
  device: cuda:0
  dt: 0.005
  render_interval: 4
  gravity: !!python/tuple
  - 0.0
  - 0.0
  - -9.81
ui_window_class_type: isaaclab.envs.ui.manager_based_rl_env_window:ManagerBasedRLEnvWindow
seed: 42
decimation: 4
scene:
  num_envs: 4096
  env_spacing: 2.5
  robot:
    class_type: isaaclab.assets.articulation.articulation:Articulation
    prim_path: /World/envs/env_.*/Robot
    spawn:
      func: isaaclab.sim.spawners.from_files.from_files:spawn_from_usd
      usd_path: http://omniverse-content-production.s3-us-west-2.amazonaws.com/Assets/Isaac/4.5/Isaac/IsaacLab/Robots/Unitree/Go2/go2.usd
    init_state:
      pos: !!python/tuple
      - 0.0
      - 0.0
      - 0.4
      rot: !!python/tuple
      - 1.0
      - 0.0
      - 0.0
      - 0.0
      joint_pos:
        .*L_hip_joint: 0.1
        .*R_hip_joint: -0.1
        FL_thigh_joint: 0.9
        FR_thigh_joint: 0.8
        R[L,R]_thigh_joint: 1.0
        .*_calf_joint: -1.5
      joint_vel:
        .*: 0.0
    soft_joint_pos_limit_factor: 0.9
    actuators:
      base_legs:
        class_type: isaaclab.actuators.actuator_pd:DCMotor
        joint_names_expr:
        - .*_hip_joint
        - .*_thigh_joint
        - .*_calf_joint
        effort_limit: 23.5
        velocity_limit: 30.0
        effort_limit_sim: null
        velocity_limit_sim: null
        stiffness:
          F.*_hip_joint: 21.0
          R.*_hip_joint: 22.0
          .*_thigh_joint: 25.0
          .*_calf_joint: 30.0
        damping: 0.5
        armature: null
        friction: 0.0
        saturation_effort: 23.5
  terrain:
    class_type: isaaclab.terrains.terrain_importer:TerrainImporter
    terrain_type: plane
  contact_forces:
    class_type: isaaclab.sensors.contact_sensor.contact_sensor:ContactSensor
    prim_path: /World/envs/env_.*/Robot/.*
    history_length: 3
observations:
  policy:
    concatenate_terms: true
    concatenate_dim: -1
    enable_corruption: true
    history_length: null
    flatten_history_dim: true
    base_lin_vel:
      func: isaaclab.envs.mdp.observations:base_lin_vel
      params: {}
      modifiers: null
      noise:
        func: isaaclab.utils.noise.noise_model:uniform_noise
        operation: add
        n_min: -0.1
        n_max: 0.1
      clip: !!python/tuple
      - -2.0
      - 2.0
      scale: 2.0
      history_length: 0
      flatten_history_dim: true
    base_ang_vel:
      func: isaaclab.envs.mdp.observations:base_ang_vel
      params: {}
      modifiers: null
      noise:
        func: isaaclab.utils.noise.noise_model:uniform_noise
        operation: add
        n_min: -0.2
        n_max: 0.2
      clip: null
      scale: 0.25
      history_length: 0
      flatten_history_dim: true
    projected_gravity:
      func: isaaclab.envs.mdp.observations:projected_gravity
      params: {}
      modifiers: null
      noise: null
      clip: null
      scale: null
      history_length: 0
      flatten_history_dim: true
    velocity_commands:
      func: isaaclab.envs.mdp.observations:generated_commands
      params:
        command_name: base_velocity
      modifiers: null
      noise: null
      clip: null
      scale: null
      history_length: 0
      flatten_history_dim: true
    joint_pos:
      func: isaaclab.envs.mdp.observations:joint_pos_rel
      params: {}
      modifiers: null
      noise: null
      clip: null
      scale: null
      history_length: 0
      flatten_history_dim: true
    joint_vel:
      func: isaaclab.envs.mdp.observations:joint_vel_rel
      params: {}
      modifiers: null
      noise: null
      clip: null
      scale: 0.05
      history_length: 0
      flatten_history_dim: true
    actions:
      func: isaaclab.envs.mdp.observations:last_action
      params: {}
      modifiers: null
      noise: null
      clip: null
      scale: null
      history_length: 0
      flatten_history_dim: true
    height_scan: null
  critic: null
actions:
  joint_pos:
    class_type: isaaclab.envs.mdp.actions.joint_actions:JointPositionAction
    asset_name: robot
    debug_vis: false
    clip: null
    joint_names:
    - .*
    scale:
      .*_hip_joint: 0.125
      .*_thigh_joint: 0.25
      .*_calf_joint: 0.3
    offset: 0.0
    preserve_order: false
    use_default_offset: true
commands:
  base_velocity:
    class_type: isaaclab.envs.mdp.commands.velocity_command:UniformVelocityCommand
    resampling_time_range: !!python/tuple
    - 10.0
    - 10.0
    heading_command: true
    ranges:
      lin_vel_x: !!python/tuple
      - -1.0
      - 1.0
      lin_vel_y: !!python/tuple
      - -0.5
      - 0.5
      ang_vel_z: !!python/tuple
      - -1.0
      - 1.0
      heading: !!python/tuple
      - -3.141592653589793
      - 3.141592653589793
rewards:
  track_lin_vel_xy_exp:
    func: isaaclab.envs.mdp.rewards:track_lin_vel_xy_exp
    params:
      command_name: base_velocity
      std: 0.5
    weight: 1.5
events:
  push_robot: null
"""

AGENT_YAML = """\
seed: 42
device: cuda:0
num_steps_per_env: 24
max_iterations: 1500
empirical_normalization: false
obs_groups:
  actor:
  - policy
  critic:
  - policy
clip_actions: null
save_interval: 50
experiment_name: unitree_go2_flat
class_name: OnPolicyRunner
actor:
  class_name: MLPModel
  hidden_dims:
  - 32
  - 16
  activation: elu
  obs_normalization: true
  distribution_cfg:
    class_name: GaussianDistribution
    init_std: 1.0
    std_type: scalar
critic:
  class_name: MLPModel
  hidden_dims:
  - 32
  - 16
  activation: elu
  obs_normalization: true
  distribution_cfg: null
algorithm:
  class_name: PPO
  num_learning_epochs: 5
  num_mini_batches: 4
  learning_rate: 0.001
"""

OBS_SIZE = 48  # 3 + 3 + 3 + 3 + 12 + 12 + 12
ACTIONS = 12


def _run_dir(tmp_path: Path, env_yaml: str = GO2_ENV_YAML, agent_yaml: str = AGENT_YAML) -> Path:
    run = tmp_path / "2026-01-01_00-00-00"
    (run / "params").mkdir(parents=True)
    (run / "params" / "env.yaml").write_text(env_yaml)
    (run / "params" / "agent.yaml").write_text(agent_yaml)
    return run


def _obs_td(x: torch.Tensor) -> TensorDict:
    return TensorDict({"policy": x}, batch_size=[x.shape[0]])


def _actor(obs_size: int = OBS_SIZE, recurrent: bool = False, seed: int = 0) -> MLPModel:
    """A tiny rsl-rl-lib actor with non-trivial normaliser statistics."""
    torch.manual_seed(seed)
    groups = {"actor": ["policy"], "critic": ["policy"]}
    obs = _obs_td(torch.zeros(1, obs_size))
    dist = {"class_name": "GaussianDistribution", "init_std": 1.0}
    if recurrent:
        actor: MLPModel = RNNModel(
            obs,
            groups,
            "actor",
            ACTIONS,
            [16],
            "elu",
            True,
            dist,
            rnn_type="lstm",
            rnn_hidden_dim=8,
            rnn_num_layers=1,
        )
    else:
        actor = MLPModel(obs, groups, "actor", ACTIONS, [32, 16], "elu", True, dist)
    actor.train()
    actor.update_normalization(_obs_td(torch.randn(256, obs_size) * 3.0 + 0.5))
    return actor.eval()


def _save_checkpoint(actor: MLPModel, path: Path) -> None:
    """model_<it>.pt exactly as OnPolicyRunner.save writes it: PPO.save() + iter + infos."""
    obs = _obs_td(torch.zeros(1, OBS_SIZE))
    critic = MLPModel(obs, {"actor": ["policy"], "critic": ["policy"]}, "critic", 1, [32, 16], "elu", True)
    saved = PPO(actor, critic, storage=None).save()
    saved["iter"] = 10
    saved["infos"] = None
    torch.save(saved, path)


def _source_step(actor: MLPModel) -> Callable[[np.ndarray], np.ndarray]:
    """The source policy as rsl_rl runs it at play time: deterministic output, state carried."""

    def step(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return actor(_obs_td(torch.as_tensor(obs, dtype=torch.float32))).numpy()

    return step


def _isaaclab_obs(
    state: RobotState, robot_names: tuple[str, ...], env_defaults: dict[str, float]
) -> np.ndarray:
    """The Go2 env's policy observation computed by hand the way Isaac Lab does, in ITS joint order."""
    idx = [robot_names.index(n) for n in GO2_ISAACLAB_ORDER]
    default = np.array([env_defaults[n] for n in GO2_ISAACLAB_ORDER])
    spec = get_robot_spec("go2")
    parts = [
        np.clip(np.asarray(state.base_lin_vel), -2.0, 2.0) * 2.0,
        state.gyro * 0.25,
        projected_gravity(state, spec),
        state.command,
        state.joint_pos[idx] - default,
        state.joint_vel[idx] * 0.05,
        state.last_action[idx],
    ]
    return np.concatenate(parts).astype(np.float32)[None]


ENV_DEFAULTS = {
    **{f"{leg}_hip_joint": (0.1 if leg[1] == "L" else -0.1) for leg in ("FL", "FR", "RL", "RR")},
    "FL_thigh_joint": 0.9,
    "FR_thigh_joint": 0.8,
    "RL_thigh_joint": 1.0,
    "RR_thigh_joint": 1.0,
    **{f"{leg}_calf_joint": -1.5 for leg in ("FL", "FR", "RL", "RR")},
}


def _random_state(rng: np.random.Generator, last_action: np.ndarray | None = None) -> RobotState:
    spec = get_robot_spec("go2")
    quat = rng.standard_normal(4)
    return RobotState(
        joint_pos=spec.default_pos_array + rng.uniform(-0.3, 0.3, 12),
        joint_vel=rng.standard_normal(12) * 3.0,
        base_quat=quat / np.linalg.norm(quat),
        gyro=rng.standard_normal(3),
        command=rng.uniform(-1.0, 1.0, 3),
        last_action=rng.standard_normal(12) if last_action is None else last_action,
        base_lin_vel=rng.standard_normal(3) * 1.5,
    )


def _compare_through_deploy(
    artifact_dir: Path, source: Callable[[np.ndarray], np.ndarray], steps: int = 30, history: int = 1
) -> float:
    """Largest |artifact - source| action gap (robot order, mapped by name) over `steps` sequential states:
    the artifact through ObservationPipeline + OnnxPolicy, the source on Isaac Lab's observation."""
    artifact = load_artifact(artifact_dir)
    contract = artifact.contract
    pipeline = ObservationPipeline(contract)
    policy = OnnxPolicy(artifact_dir / "policy.onnx", contract)
    robot_names = contract.robot.joint_names
    rng = np.random.default_rng(1)
    frames: list[np.ndarray] = []
    gap = 0.0
    last = np.zeros(12)
    for _ in range(steps):
        state = _random_state(rng, last)
        _, x = pipeline(state)
        ours = contract.full_action(policy(x))
        frame = _isaaclab_obs(state, robot_names, ENV_DEFAULTS)
        frames = [*(frames or [frame] * history)[1:], frame] if history > 1 else [frame]
        # Isaac Lab keeps each term's history together: term 1 oldest..newest, term 2, ...
        sizes = [3, 3, 3, 3, 12, 12, 12]
        starts = np.cumsum([0, *sizes])
        isaac_in = np.concatenate(
            [f[:, s : s + n] for s, n in zip(starts, sizes, strict=False) for f in frames], axis=1
        )
        theirs_isaac = source(isaac_in).reshape(-1)
        theirs = np.zeros(12)
        for k, name in enumerate(GO2_ISAACLAB_ORDER):
            theirs[robot_names.index(name)] = theirs_isaac[k]
        gap = max(gap, float(np.max(np.abs(ours - theirs))))
        last = ours
    return gap


def test_go2_joint_order_and_overrides_land_by_name(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    _save_checkpoint(_actor(), run / "model_10.pt")
    imported = import_isaaclab(run, "go2")
    assert list(imported.policy_joints) == GO2_ISAACLAB_ORDER
    assert imported.source["joint_order"]["from"].startswith("breadth-first")
    kp, kd, q0, scale = (imported.overrides[k] for k in ("kp", "kd", "default_joint_pos", "action_scale"))
    # By hand: F.*_hip 21, R.*_hip 22, thighs 25, calves 30; FL_thigh's default 0.9, FR_thigh's 0.8.
    assert kp["FL_hip_joint"] == 21.0 and kp["FR_hip_joint"] == 21.0 and kp["RR_hip_joint"] == 22.0
    assert kp["RL_calf_joint"] == 30.0 and kd["FR_thigh_joint"] == 0.5
    assert q0["FL_thigh_joint"] == 0.9 and q0["FR_thigh_joint"] == 0.8 and q0["RR_hip_joint"] == -0.1
    assert (
        scale["FL_hip_joint"] == 0.125 and scale["RL_thigh_joint"] == 0.25 and scale["FR_calf_joint"] == 0.3
    )
    names = [t.name for t in imported.terms]
    assert names == [
        "base_lin_vel",
        "base_ang_vel",
        "projected_gravity",
        "commands",
        "joint_pos_rel",
        "joint_vel",
        "last_action",
    ]
    assert imported.terms[0].clip == (-2.0, 2.0) and imported.terms[0].scale == 2.0
    assert imported.command_ranges == ((-1.0, 1.0), (-0.5, 0.5), (-1.0, 1.0))
    assert imported.history_length == 1 and imported.state_shapes == ()

    art = write_imported_artifact(imported, tmp_path / "art", check_steps=50)
    spec = art.contract.robot
    # robolearn's Go2 spec is in motor order (FR, FL, RR, RL): the values sit on the named joints.
    assert spec.joint_names[0] == "FR_hip_joint"
    assert spec.kp[spec.joint_names.index("FL_thigh_joint")] == 25.0
    assert spec.default_joint_pos[spec.joint_names.index("FL_thigh_joint")] == 0.9
    assert spec.action_scale[spec.joint_names.index("RR_calf_joint")] == 0.3
    assert set(art.contract.robot_overrides) == {"kp", "kd", "default_joint_pos", "action_scale"}
    assert art.contract.policy_joints == tuple(GO2_ISAACLAB_ORDER)


@pytest.mark.parametrize("legacy", [False, True], ids=["rsl_rl5", "rsl_rl3_layout"])
def test_rsl_rl_checkpoint_actions_match_the_source(tmp_path: Path, legacy: bool) -> None:
    actor = _actor()
    agent = AGENT_YAML
    run = _run_dir(tmp_path)
    if legacy:
        # rsl-rl-lib <= 3 (most Isaac Lab runs to date): ActorCritic's keys and a `policy` agent section.
        sd = actor.state_dict()
        model = {k.replace("mlp.", "actor.", 1): v for k, v in sd.items() if k.startswith("mlp.")}
        model.update(
            {
                k.replace("obs_normalizer.", "actor_obs_normalizer.", 1): v
                for k, v in sd.items()
                if k.startswith("obs_normalizer.")
            }
        )
        model["std"] = torch.ones(ACTIONS)
        torch.save(
            {"model_state_dict": model, "optimizer_state_dict": {}, "iter": 5, "infos": None},
            run / "model_5.pt",
        )
        agent = AGENT_YAML.split("actor:\n  class_name")[0] + (
            "policy:\n  class_name: ActorCritic\n  init_noise_std: 1.0\n  actor_obs_normalization: true\n"
            "  critic_obs_normalization: true\n  actor_hidden_dims: [32, 16]\n  critic_hidden_dims: [32, 16]\n"
            "  activation: elu\n"
        )
        (run / "params" / "agent.yaml").write_text(agent)
    else:
        _save_checkpoint(actor, run / "model_10.pt")
    imported = import_isaaclab(run, "go2")
    assert "checkpoint" in imported.source["policy_format"]
    write_imported_artifact(imported, tmp_path / "art", check_steps=50)
    assert _compare_through_deploy(tmp_path / "art", _source_step(actor)) < 1e-5


def test_torchscript_policy_actions_match_the_source(tmp_path: Path) -> None:
    actor = _actor(seed=3)
    run = _run_dir(tmp_path)
    (run / "exported").mkdir()
    torch.jit.script(actor.as_jit()).save(
        str(run / "exported" / "policy.pt")
    )  # OnPolicyRunner.export_policy_to_jit
    imported = import_isaaclab(run, "go2")
    assert imported.source["policy_format"] == "torchscript"
    write_imported_artifact(imported, tmp_path / "art", check_steps=50)
    assert _compare_through_deploy(tmp_path / "art", _source_step(actor)) < 1e-5


def _export_onnx(
    module: torch.nn.Module, args: tuple, names_in: list[str], names_out: list[str], path: Path
) -> None:
    # Isaac Lab's exporter: torch.onnx.export with obs -> actions (+ h_in/c_in -> h_out/c_out), opset 11.
    torch.onnx.export(
        module, args, str(path), input_names=names_in, output_names=names_out, opset_version=11, dynamo=False
    )


@pytest.mark.parametrize("exporter", ["isaaclab_mlp", "rsl_rl_lib_lstm"])
def test_onnx_policy_actions_match_the_source(tmp_path: Path, exporter: str) -> None:
    """Isaac Lab's exporter (TorchScript-based torch.onnx.export, opset 11) and rsl-rl-lib 5's
    OnPolicyRunner.export_policy_to_onnx (torch.export-based, opset 18, h_in/c_in state)."""
    recurrent = exporter == "rsl_rl_lib_lstm"
    agent = (
        AGENT_YAML if not recurrent else AGENT_YAML.replace("class_name: MLPModel", "class_name: RNNModel", 1)
    )
    run = _run_dir(tmp_path, agent_yaml=agent)
    actor = _actor(recurrent=recurrent, seed=5)
    (run / "exported").mkdir()
    onnx_model = actor.as_onnx(verbose=False).eval()
    path = run / "exported" / "policy.onnx"
    if recurrent:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                onnx_model,
                onnx_model.get_dummy_inputs(),
                str(path),
                input_names=onnx_model.input_names,
                output_names=onnx_model.output_names,
                opset_version=18,
                verbose=False,
            )
    else:
        _export_onnx(onnx_model, (torch.zeros(1, OBS_SIZE),), ["obs"], ["actions"], path)
    imported = import_isaaclab(run, "go2")
    assert imported.source["policy_format"] == "onnx"
    write_imported_artifact(imported, tmp_path / "art", check_steps=50)
    source = actor.as_jit().eval() if recurrent else None
    step = _source_step(actor) if source is None else (lambda o: source(torch.as_tensor(o)).detach().numpy())
    assert _compare_through_deploy(tmp_path / "art", step) < 1e-5


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "checkpoint"])
def test_recurrent_policy_with_history_matches_the_source(tmp_path: Path, fmt: str) -> None:
    """An LSTM policy observing 2 frames: state carried step by step, Isaac Lab's term-major history."""
    history = 2
    env_yaml = GO2_ENV_YAML.replace("    history_length: null\n", f"    history_length: {history}\n", 1)
    agent = AGENT_YAML.replace(
        "class_name: MLPModel\n  hidden_dims:\n  - 32\n  - 16",
        "class_name: RNNModel\n  rnn_type: lstm\n  rnn_hidden_dim: 8\n  rnn_num_layers: 1\n  hidden_dims:\n  - 16",
        1,
    )
    run = _run_dir(tmp_path, env_yaml, agent)
    actor = _actor(OBS_SIZE * history, recurrent=True, seed=7)
    if fmt == "onnx":
        (run / "exported").mkdir()
        zeros = torch.zeros(1, 1, 8)
        _export_onnx(
            actor.as_onnx().eval(),
            (torch.zeros(1, OBS_SIZE * history), zeros, zeros),
            ["obs", "h_in", "c_in"],
            ["actions", "h_out", "c_out"],
            run / "exported" / "policy.onnx",
        )
    elif fmt == "torchscript":
        (run / "exported").mkdir()
        torch.jit.script(actor.as_jit()).save(str(run / "exported" / "policy.pt"))
    else:
        _save_checkpoint(actor, run / "model_3.pt")
    imported = import_isaaclab(run, "go2")
    assert imported.history_length == history and imported.state_shapes == ((1, 1, 8), (1, 1, 8))
    write_imported_artifact(imported, tmp_path / "art", check_steps=30)
    assert len(load_artifact(tmp_path / "art").contract.recurrent_state) == 2
    source = actor.as_jit().eval()  # rsl-rl's stateful play-time policy, fresh state
    assert (
        _compare_through_deploy(
            tmp_path / "art", lambda o: source(torch.as_tensor(o)).detach().numpy(), history=history
        )
        < 1e-5
    )


def test_g1_breadth_first_order_matches_isaaclab() -> None:
    """Breadth-first over robolearn's G1 models is unitree_rl_lab's articulation order (deploy.yaml joint_ids_map)."""
    assert breadth_first_joints(get_robot_spec("g1")) == [G1_23_SDK[i] for i in G1_23_IDS]
    assert breadth_first_joints(get_robot_spec("g1_29dof")) == [G1_29_SDK[i] for i in G1_29_IDS]


def test_joint_names_override_and_deploy_yaml(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    _save_checkpoint(_actor(), run / "model_1.pt")
    depth_first = [f"{leg}_{p}_joint" for leg in ("FL", "FR", "RL", "RR") for p in ("hip", "thigh", "calf")]
    (tmp_path / "names.txt").write_text("\n".join(depth_first))
    imported = import_isaaclab(run, "go2", joint_names=tmp_path / "names.txt")
    assert list(imported.policy_joints) == depth_first  # e.g. Isaac Lab's Newton backend
    sdk = ["FR_hip_joint", "FR_thigh_joint", "FR_calf_joint", "FL_hip_joint", "FL_thigh_joint", "FL_calf_joint",
           "RR_hip_joint", "RR_thigh_joint", "RR_calf_joint", "RL_hip_joint", "RL_thigh_joint", "RL_calf_joint"]  # fmt: skip
    env = GO2_ENV_YAML.replace(
        "    soft_joint_pos_limit_factor",
        "    joint_sdk_names:\n" + "".join(f"    - {n}\n" for n in sdk) + "    soft_joint_pos_limit_factor",
    )
    (run / "params" / "env.yaml").write_text(env)
    (run / "params" / "deploy.yaml").write_text(
        "joint_ids_map: [3, 0, 9, 6, 4, 1, 10, 7, 5, 2, 11, 8]\nstep_dt: 0.02\n"
    )
    imported = import_isaaclab(run, "go2")
    assert list(imported.policy_joints) == GO2_ISAACLAB_ORDER
    assert imported.source["joint_order"]["from"] == "params/deploy.yaml joint_ids_map"


def _one_line(exc: pytest.ExceptionInfo[UserError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_unknown_term_is_one_line_naming_it(tmp_path: Path) -> None:
    env = GO2_ENV_YAML.replace(
        "    height_scan: null\n",
        "    height_scan:\n      func: isaaclab.envs.mdp.observations:height_scan\n      params:\n        offset: 0.5\n      clip: !!python/tuple\n      - -1.0\n      - 1.0\n",
    )
    run = _run_dir(tmp_path, env)
    with pytest.raises(UserError) as exc:
        import_isaaclab(run, "go2")
    assert "'height_scan'" in _one_line(exc) and "isaaclab.envs.mdp.observations:height_scan" in str(
        exc.value
    )


def test_bad_runs_are_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "params").mkdir(parents=True)
    with pytest.raises(UserError) as exc:
        import_isaaclab(run, "go2")
    assert "params/env.yaml" in _one_line(exc)
    run = _run_dir(tmp_path)
    with pytest.raises(UserError) as exc:
        import_isaaclab(run, "go2")  # no policy file at all
    assert "exported/policy.onnx" in _one_line(exc)
    per_term = GO2_ENV_YAML.replace(
        "      scale: 0.05\n      history_length: 0", "      scale: 0.05\n      history_length: 3", 1
    )
    (run / "params" / "env.yaml").write_text(per_term)
    _save_checkpoint(_actor(), run / "model_1.pt")
    with pytest.raises(UserError) as exc:
        import_isaaclab(run, "go2")
    assert "joint_vel=3" in _one_line(exc)
    (run / "params" / "env.yaml").write_text(GO2_ENV_YAML.replace("decimation: 4", "decimation: 2"))
    with pytest.raises(UserError) as exc:
        import_isaaclab(run, "go2")
    assert "0.01 s" in _one_line(exc)
    (run / "params" / "env.yaml").write_text(GO2_ENV_YAML)
    with pytest.raises(UserError) as exc:
        import_isaaclab(run, "go2", joint_names=["FL_hip_joint", "FL_hip"])
    assert "'FL_hip'" in _one_line(exc)


# A unitree_rl_lab G1 (23 DoF) velocity run as its dump looks: ImplicitActuator groups with regex gain
# dicts, joint_sdk_names with empty slots, a group-level history of 5 and params/deploy.yaml's joint_ids_map.
G1_ENV_YAML = """\
sim:
  dt: 0.005
  gravity: !!python/tuple
  - 0.0
  - 0.0
  - -9.81
decimation: 4
scene:
  robot:
    class_type: isaaclab.assets.articulation.articulation:Articulation
    init_state:
      joint_pos:
        left_hip_pitch_joint: -0.1
        right_hip_pitch_joint: -0.1
        .*_knee_joint: 0.3
        .*_ankle_pitch_joint: -0.2
        .*_shoulder_pitch_joint: 0.3
        left_shoulder_roll_joint: 0.25
        right_shoulder_roll_joint: -0.25
        .*_elbow_joint: 0.97
        left_wrist_roll_joint: 0.15
        right_wrist_roll_joint: -0.15
      joint_vel:
        .*: 0.0
    actuators:
      N7520-14.3:
        class_type: isaaclab.actuators.actuator_pd:ImplicitActuator
        joint_names_expr:
        - .*_hip_pitch_.*
        - .*_hip_yaw_.*
        - waist_yaw_joint
        stiffness:
          .*_hip_.*: 100.0
          waist_yaw_joint: 200.0
        damping:
          .*_hip_.*: 2.0
          waist_yaw_joint: 5.0
      N7520-22.5:
        class_type: isaaclab.actuators.actuator_pd:ImplicitActuator
        joint_names_expr:
        - .*_hip_roll_.*
        - .*_knee_.*
        stiffness:
          .*_hip_roll_.*: 100.0
          .*_knee_.*: 150.0
        damping:
          .*_hip_roll_.*: 2.0
          .*_knee_.*: 4.0
      N5020-16:
        class_type: isaaclab.actuators.actuator_pd:ImplicitActuator
        joint_names_expr:
        - .*_shoulder_.*
        - .*_elbow_.*
        - .*_wrist_roll_.*
        - .*ankle.*
        stiffness: 40.0
        damping: 10.0
    joint_sdk_names:
@SDK@
observations:
  policy:
    concatenate_terms: true
    enable_corruption: true
    history_length: 5
    flatten_history_dim: true
    base_ang_vel:
      func: isaaclab.envs.mdp.observations:base_ang_vel
      params: {}
      scale: 0.2
      history_length: 0
    projected_gravity:
      func: isaaclab.envs.mdp.observations:projected_gravity
      params: {}
      scale: null
      history_length: 0
    velocity_commands:
      func: isaaclab.envs.mdp.observations:generated_commands
      params:
        command_name: base_velocity
      scale: null
      history_length: 0
    joint_pos_rel:
      func: isaaclab.envs.mdp.observations:joint_pos_rel
      params: {}
      history_length: 0
    joint_vel_rel:
      func: isaaclab.envs.mdp.observations:joint_vel_rel
      params: {}
      scale: 0.05
      history_length: 0
    last_action:
      func: isaaclab.envs.mdp.observations:last_action
      params: {}
      history_length: 0
actions:
  JointPositionAction:
    class_type: isaaclab.envs.mdp.actions.joint_actions:JointPositionAction
    clip: null
    joint_names:
    - .*
    scale: 0.25
    use_default_offset: true
commands:
  base_velocity:
    class_type: isaaclab.envs.mdp.commands.velocity_command:UniformVelocityCommand
    ranges:
      lin_vel_x: !!python/tuple
      - 0
      - 0
      lin_vel_y: !!python/tuple
      - 0
      - 0
      ang_vel_z: !!python/tuple
      - 0
      - 0
      heading: null
""".replace("@SDK@", "\n".join(f"    - '{n}'" for n in G1_23_SDK))


def test_g1_unitree_rl_lab_run(tmp_path: Path) -> None:
    agent = AGENT_YAML.replace("  - 32\n  - 16\n  activation", "  - 16\n  activation", 1)
    run = _run_dir(tmp_path, G1_ENV_YAML, agent)
    (run / "params" / "deploy.yaml").write_text(f"joint_ids_map: {G1_23_IDS}\nstep_dt: 0.02\n")
    frame = 3 + 3 + 3 + 3 * 23
    torch.manual_seed(0)
    obs = _obs_td(torch.zeros(1, frame * 5))
    actor = MLPModel(obs, {"actor": ["policy"]}, "actor", 23, [16], "elu", True)
    critic = MLPModel(obs, {"actor": ["policy"], "critic": ["policy"]}, "critic", 1, [16], "elu", True)
    torch.save({**PPO(actor, critic, storage=None).save(), "iter": 1, "infos": None}, run / "model_1.pt")
    imported = import_isaaclab(run, "g1")
    order = [G1_23_SDK[i] for i in G1_23_IDS]
    assert list(imported.policy_joints) == order
    assert imported.source["joint_order"]["from"] == "params/deploy.yaml joint_ids_map"
    assert imported.history_length == 5
    kp, kd, q0 = (imported.overrides[k] for k in ("kp", "kd", "default_joint_pos"))
    assert kp["waist_yaw_joint"] == 200.0 and kd["waist_yaw_joint"] == 5.0 and kp["left_knee_joint"] == 150.0
    assert kp["right_hip_yaw_joint"] == 100.0 and kp["left_ankle_roll_joint"] == 40.0
    assert q0["right_shoulder_roll_joint"] == -0.25 and q0["waist_yaw_joint"] == 0.0
    art = write_imported_artifact(imported, tmp_path / "art", check_steps=20)
    assert art.contract.input_size == frame * 5
    assert art.contract.command_ranges == ((0.0, 0.0),) * 3
