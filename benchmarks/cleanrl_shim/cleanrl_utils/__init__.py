"""Not CleanRL's `cleanrl_utils`: only `buffers.ReplayBuffer`, in NumPy (see ../README.md)."""
