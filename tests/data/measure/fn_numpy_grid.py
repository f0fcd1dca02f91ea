import numpy as np


# perfhint: args=(1000,)
def grid(n):
    return np.zeros((n, n)) + 1.0
