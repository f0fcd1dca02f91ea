# perfhint: args=(10**6,)
# A script without a __main__ guard: the hint is on line 0 and the header directive is its context.

import sys

N = 1000


def build(n):
    return list(range(n))


data = build(N)
print(len(data), file=sys.stderr)
