# perfhint: off
def silenced(n):
    return n


# perfhint: args=(n,)
def malformed(n):
    return n


# perfhint: gpu=H100 colour=blue
# An ordinary comment between directive lines is allowed.
# perfhint: dtype=bf16 shape=(4096, 4096)
@functools.cache
def decorated(n):
    return n


# perfhint: args=(1, 2)

def not_attached(a, b):
    return a + b


# perfhint: args=([0]*10**12,)
def bomb(xs):
    return xs


# perfhint: args=10**6 kwargs={'chunk': 2**16}
def one_argument(n, chunk=1):
    return n // chunk


# perfhint: gpu=H100,
def comma_separated(n):
    return n
