"""Minari-layout datasets: offline RL data, demonstrations and deploy recordings (ARCHITECTURE contract 5).

One module reads and writes them all (robolearn/datasets/store.py); collectors live beside their methods.
"""

from robolearn.datasets.store import (
    Episode,
    OfflineDataset,
    Transitions,
    dataset_dir,
    datasets_root,
    load_dataset,
    normalized_score,
    write_dataset,
)

__all__ = [
    "Episode",
    "OfflineDataset",
    "Transitions",
    "dataset_dir",
    "datasets_root",
    "load_dataset",
    "normalized_score",
    "write_dataset",
]
