"""Run directories: layout, metrics, checkpoints and the callbacks that write them."""

from robolearn.runs.checkpoint import Checkpoint, latest_checkpoint, load_checkpoint, save_checkpoint
from robolearn.runs.layout import RunDir

__all__ = ["Checkpoint", "RunDir", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]
