import torch
import triton
import triton.language as tl


@triton.jit
def _row_max(row):
    return tl.max(row, axis=0)


@triton.jit
def _exp_shifted(row):
    return tl.exp(row - _row_max(row))


@triton.autotune(
    configs=[
        triton.Config({"BLOCK_SIZE": 1024}, num_warps=4),
        triton.Config({"BLOCK_SIZE": 2048}, num_warps=8),
    ],
    key=["n_cols"],
)
@triton.heuristics({"EVEN_COLS": lambda args: args["n_cols"] % args["BLOCK_SIZE"] == 0})
@triton.jit
def softmax_kernel(out_ptr, in_ptr, in_row_stride, out_row_stride, n_cols,
                   BLOCK_SIZE: tl.constexpr, EVEN_COLS: tl.constexpr):
    row_idx = tl.program_id(0)
    col_offsets = tl.arange(0, BLOCK_SIZE)
    mask = col_offsets < n_cols
    row = tl.load(in_ptr + row_idx * in_row_stride + col_offsets, mask=mask, other=-float("inf"))
    numerator = _exp_shifted(row)
    denominator = tl.sum(numerator, axis=0)
    tl.store(out_ptr + row_idx * out_row_stride + col_offsets, numerator / denominator, mask=mask)


@triton.jit
def unused_kernel(x_ptr):
    tl.store(x_ptr, 0)


class Softmax:
    # perfhint: shape=(8192, 4096) dtype=fp16
    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        n_rows, n_cols = x.shape
        y = torch.empty_like(x)
        softmax_kernel[(n_rows,)](y, x, x.stride(0), y.stride(0), n_cols)
        return y
