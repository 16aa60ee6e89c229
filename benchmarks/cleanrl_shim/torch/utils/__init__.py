"""Not PyTorch: only `torch.utils.tensorboard.SummaryWriter` (see ../../README.md)."""
