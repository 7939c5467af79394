"""Torch held to a number of threads for the length of a test, one while tests train models.

The two cores are shared with other work (the app's server, Chromium): torch's two OpenMP threads then
wait on each other at every small operation, and a tiny run takes 30 s instead of 0.4 s.
"""

from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(count: int):
    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def one_torch_thread():
    return torch_threads(1)
