import triton as tr
import triton.language as tl
from numba import jit
from triton import jit as triton_jit


@triton_jit
def fill_kernel(out_ptr, value, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, value)


@tr.jit(do_not_specialize=["value"])
def fill_kernel_v2(out_ptr, value, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, value)


@jit(nopython=True)
def numba_sum(xs):  # numba's jit: an ordinary function region
    return xs.sum()


class Filler:
    kernel = fill_kernel_v2

    def fill(self, out, value):
        fill_kernel[(out.numel() // 128,)](out, value, BLOCK=128)

    def fill_v2(self, out, value):  # a kernel reached through a class attribute is not followed
        self.kernel[(out.numel() // 128,)](out, value, BLOCK=128)


# A launch at module level has no launcher to show a hint on: the file is a script instead.
fill_kernel[(1,)](None, 0.0, BLOCK=128)
