"""Multitask imitation: hidden-context demonstration tasks, inverse-dynamics pretraining, BC, diffusion policies, IDM labelling (issue 18)."""
