import triton
import triton.language as tl


# perfhint: args=(10**6,)
def from_comment(n):
    return [0] * n


def from_call(rows, cols):
    return [[0.0] * (2 * cols) for _ in range(rows)]


def unknown(data):
    return sorted(data, reverse=True)


class Matrix:
    def transpose(self):
        return list(zip(*self.rows))


@triton.jit
def scale_kernel(x_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(x_ptr + offsets, 3 * tl.load(x_ptr + offsets, mask=offsets < n), mask=offsets < n)


# perfhint: shape=(4096,) dtype=fp16
def scale(x):
    scale_kernel[(4,)](x, x.numel(), BLOCK=1024)


def long_function(n):
    total = 0
    total += n * 1 + n * 2 + n * 3 + n * 4 + n * 5 + n * 6 + n * 7 + n * 8 + n * 9 + n * 10
    total += n * 11 + n * 12 + n * 13 + n * 14 + n * 15 + n * 16 + n * 17 + n * 18 + n * 19
    return total


# perfhint: off
def not_annotated(n):
    return n


if __name__ == "__main__":
    from_call(1000, 1000)
