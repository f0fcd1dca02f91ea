"""Arguments come from literal calls in the same file when there is no args= directive."""


def count_pairs(values, target):
    return sum(1 for a in values for b in values if a + b == target)


def fib(n):
    if n < 2:
        return fib(1)  # a literal call inside the function itself is a base case, not an example
    return fib(n - 1) + fib(n - 2)


def scale(xs, factor=2, *, offset=0):
    return [x * factor + offset for x in xs]


def unknown(n):
    return n


# perfhint: args=(7,)
def commented(n):
    return n


def too_big(xs):
    return len(xs)


def test_count_pairs():
    assert count_pairs([1, 2, 3], 4) == 1


# perfhint: gpu=H100
if __name__ == "__main__":
    size = 10
    unknown(size)
    fib(25)
    fib(30)
    scale([1.5] * 1000, factor=3, offset=-1)
    commented(99)
    too_big([0] * 10**9)
