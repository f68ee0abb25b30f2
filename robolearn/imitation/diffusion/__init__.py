"""Action-chunk policies for imitation: diffusion policy (our U-Net / transformer denoisers on diffusers'
schedulers) and MSE behaviour cloning, with receding-horizon execution (robolearn/imitation/diffusion/policy.py)."""
