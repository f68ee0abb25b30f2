"""Offline model-based RL: MOPO and MOBILE on a learned ensemble, with MOREC's step filter (docs/offline.md)."""
