"""Not PyTorch: the stand-in for `torch.utils.tensorboard` only (see ../README.md)."""

__version__ = "0+cleanrl-shim"
