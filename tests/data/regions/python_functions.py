"""Plain functions, methods, async, nested and decorated definitions."""
import functools


def top(n):
    return [0] * n


@functools.lru_cache(maxsize=None)
def cached(n):
    return n * 2


async def fetch(url):
    return url


class Matrix:
    def __init__(self, rows):
        self.rows = rows

    def mul(self, other):
        def dot(a, b):
            return sum(x * y for x, y in zip(a, b))
        return [[dot(r, c) for c in zip(*other.rows)] for r in self.rows]

    @property
    def size(self):
        return len(self.rows)

    @size.setter
    def size(self, value):
        raise AttributeError(value)

    @staticmethod
    async def load(path):
        return path


def outer():
    class Local:
        def method(self):
            return 1

    def inner():
        return Local()
    return inner
