"""Environment construction for training, evaluation and benchmarks.

Every env the platform trains on is built here, from an `env` config node, so training, evaluation
and the overhead benchmark all measure the same stack of wrappers.
"""

from robolearn.envs.factory import make_env, make_eval_env, make_vec_env, register_envs
from robolearn.envs.state import EnvSnapshotWrapper, get_vec_env_state, set_vec_env_state

__all__ = [
    "EnvSnapshotWrapper",
    "get_vec_env_state",
    "make_env",
    "make_eval_env",
    "make_vec_env",
    "register_envs",
    "set_vec_env_state",
]
