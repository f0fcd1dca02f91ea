"""Host memory: the end-to-end test expects a peak-memory hint (`≈ … MiB`) on `make_buffers`."""

import numpy as np


# perfhint: args=(1024,)
def make_buffers(n):
    a = np.zeros((n, n))
    b = np.ones((n, n))
    return a @ b
