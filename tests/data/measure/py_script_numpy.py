# numpy's import plus a 32 MB array.
import numpy as np

if __name__ == "__main__":
    grid = np.ones((2000, 2000))
    print(grid.sum())
