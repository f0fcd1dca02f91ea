import triton
import triton.language as tl
import torch


# perfhint: gpu=H100 dtype=fp16
@triton.jit
def scale_kernel(x_ptr, out_ptr, factor, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(out_ptr + offs, tl.load(x_ptr + offs, mask=mask) * factor, mask=mask)


@triton.jit
def bias_kernel(x_ptr, bias, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=mask) + bias, mask=mask)


# perfhint: gpu=A100 shape=(2**20,)
def scale(x, factor):
    out = torch.empty_like(x)
    scale_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, factor, x.numel(), BLOCK=1024)
    return out


def scale_and_shift(x, factor, bias):
    out = torch.empty_like(x)
    grid = (triton.cdiv(x.numel(), 1024),)
    scale_kernel[grid](x, out, factor, x.numel(), BLOCK=1024)
    bias_kernel[grid](out, bias, out.numel(), BLOCK=1024)
    return out


def double(x):
    return scale(x, 2.0)  # calls a launcher: a plain function, its kernels live in scale's region
