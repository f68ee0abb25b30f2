"""Deploy layer: run a policy artifact on a robot (or a simulation of one) behind a safety state machine.

    python -m robolearn.export run=<run dir>                         # the artifact: ONNX + contract.json
    python -m robolearn.deploy robot=go2 policy=<artifact> backend=mujoco duration_s=10 autostart=true autopolicy_s=1
    python -m robolearn.deploy.sim_bridge robot=go2                  # a MuJoCo Go2 on DDS (loopback)
    python -m robolearn.deploy robot=go2 policy=<artifact> backend=dds
    python -m robolearn.doctor robot=go2                             # is the robot (or bridge) reachable?

Modules: artifact (contract.json), policy (observations + onnxruntime), commands (limit checks),
safety (state machine, guards), runtime (the loops), timing (schedulers, statistics), recorder (the
log format), dataset (logs to Minari), operator (remote and keyboard), messages (Unitree message
codec and CRC), dds (CycloneDDS transport), backends (mujoco, dds), simulation and sim_bridge.
MuJoCo, onnxruntime, cyclonedds and unitree_sdk2py are imported only by the pieces that need them.
See docs/deploy.md.
"""
