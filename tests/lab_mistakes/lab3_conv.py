"""Typical mistakes for lab3-conv: each must fail exactly the listed test cells.

Each entry: short name -> (answer grade_id, full replacement source of that answer cell as a
student would write it, set of test grade_ids that must FAIL). The three answer cells are
independent (no test of one function calls another), so a mistake only fails test cells of its
own function. Which of them it fails follows from the cases each cell holds:

* test_*_conv2d[_naive]: stride 1, padding 0, int arguments, float32 (one channels-last input);
* test_*_stride_padding: strides and paddings, ints and (h, w) pairs, float32;
* test_*_checks: the channel-mismatch ValueError, and float64 cases, some with stride and padding;
* test_conv2d_vectorized: two plain float32 cases, then the operation counts on a small and a
  large input (with stride (2, 1) and padding (1, 2), stride 2, padding 1);
* test_max_pool2d: int kernel sizes and strides (default and explicit), negative inputs, float64;
  test_max_pool2d_stride_pairs: (h, w) pairs, negative inputs, float64.
"""
# --------------------------------------------------------------------------- test-cell groups
N, N_SP, N_CHK = {"test_conv2d_naive"}, {"test_conv2d_naive_stride_padding"}, {"test_conv2d_naive_checks"}
NAIVE_ALL = N | N_SP | N_CHK
C, C_SP, C_CHK, C_VEC = ({"test_conv2d"}, {"test_conv2d_stride_padding"}, {"test_conv2d_checks"},
                         {"test_conv2d_vectorized"})
CONV_ALL = C | C_SP | C_CHK | C_VEC
P, P_PAIRS = {"test_max_pool2d"}, {"test_max_pool2d_stride_pairs"}
POOL_ALL = P | P_PAIRS

# --------------------------------------------------------------------------- conv2d_naive
NAIVE_SIG = "def conv2d_naive(x, weight, bias=None, stride=1, padding=0):\n"
NAIVE_CHECK = '''    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels, weight expects {weight.shape[1]}")
'''


def naive(*, check=NAIVE_CHECK, pairs="    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)\n",
          sizes="    h_out = (h + 2 * ph - kh) // sh + 1\n    w_out = (w + 2 * pw - kw) // sw + 1\n",
          pad="    x_pad = x.new_zeros(n, c_in, h + 2 * ph, w + 2 * pw)\n    x_pad[:, :, ph:ph + h, pw:pw + w] = x\n",
          out="    out = x.new_zeros(n, c_out, h_out, w_out)\n",
          patch="            patch = x_pad[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]\n",
          kernel="weight", bias_line="    if bias is not None:\n        out += bias.view(1, -1, 1, 1)\n"):
    """A loop-over-positions conv2d_naive (like most students write it) with one part replaced."""
    return (NAIVE_SIG + check + pairs + "    n, c_in, h, w = x.shape\n    c_out, _, kh, kw = weight.shape\n"
            + sizes + pad + out + "    for i in range(h_out):\n        for j in range(w_out):\n" + patch
            + f"            out[:, :, i, j] = (patch.unsqueeze(1) * {kernel}).sum(dim=(2, 3, 4))\n"
            + bias_line + "    return out\n")


MISTAKES = {
    # output size without the "+ 1": every shape is one row and one column short
    "naive_output_size_missing_plus_one": ("conv2d_naive", naive(
        sizes="    h_out = (h + 2 * ph - kh) // sh\n    w_out = (w + 2 * pw - kw) // sw\n"), NAIVE_ALL),
    # padding counted once instead of on both sides in the output size (the buffer is right)
    "naive_output_size_padding_once": ("conv2d_naive", naive(
        sizes="    h_out = (h + ph - kh) // sh + 1\n    w_out = (w + pw - kw) // sw + 1\n"), N_SP | N_CHK),
    # the zeros all go below and to the right: x is copied into the top-left corner of the buffer
    "naive_padding_on_one_side": ("conv2d_naive", naive(
        pad="    x_pad = x.new_zeros(n, c_in, h + 2 * ph, w + 2 * pw)\n    x_pad[:, :, :h, :w] = x\n"),
        N_SP | N_CHK),
    # the window moves by the stride vertically but by 1 horizontally
    "naive_stride_ignored_horizontally": ("conv2d_naive", naive(
        patch="            patch = x_pad[:, :, i * sh:i * sh + kh, j:j + kw]\n"), N_SP | N_CHK),
    # (h, w) pairs read as (w, h)
    "naive_pairs_swapped": ("conv2d_naive", naive(
        pairs="    (sw, sh), (pw, ph) = as_pair(stride), as_pair(padding)\n"), N_SP | N_CHK),
    # true convolution: the kernel is flipped
    "naive_flipped_kernel": ("conv2d_naive", naive(kernel="weight.flip(-2, -1)"), NAIVE_ALL),
    # weight read as (C_in, C_out, kH, kW): shape errors, or wrong values when C_in == C_out
    "naive_weight_transposed": ("conv2d_naive", naive(kernel="weight.transpose(0, 1)"), NAIVE_ALL),
    "naive_bias_ignored": ("conv2d_naive", naive(bias_line=""), NAIVE_ALL),
    # `if bias:` on a tensor of several values raises "Boolean value of Tensor ... is ambiguous"
    "naive_if_bias_truthiness": ("conv2d_naive", naive(
        bias_line="    if bias:\n        out += bias.view(1, -1, 1, 1)\n"), NAIVE_ALL),
    # bias added on the last axis (the width) instead of the channels
    "naive_bias_broadcast_on_width": ("conv2d_naive", naive(
        bias_line="    if bias is not None:\n        out = out + bias\n"), NAIVE_ALL),
    # fully looped version that adds the bias once per input channel
    "naive_bias_added_per_input_channel": ("conv2d_naive", NAIVE_SIG + NAIVE_CHECK + '''    sh, sw = as_pair(stride)
    ph, pw = as_pair(padding)
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    h_out, w_out = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    x_pad = torch.zeros(n, c_in, h + 2 * ph, w + 2 * pw, dtype=x.dtype)
    x_pad[:, :, ph:ph + h, pw:pw + w] = x
    out = torch.zeros(n, c_out, h_out, w_out, dtype=x.dtype)
    for b in range(n):
        for o in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    total = 0.0
                    for c in range(c_in):
                        window = x_pad[b, c, i * sh:i * sh + kh, j * sw:j * sw + kw]
                        total = total + (window * weight[o, c]).sum()
                        if bias is not None:
                            total = total + bias[o]
                    out[b, o, i, j] = total
    return out
''', NAIVE_ALL),
    # no channel check: a broadcasting error (RuntimeError), or no error at all when C_in is 1
    "naive_no_value_error": ("conv2d_naive", naive(check=""), N_CHK),
    "naive_value_error_without_numbers": ("conv2d_naive", naive(
        check='''    if x.shape[1] != weight.shape[1]:
        raise ValueError("the number of channels does not match")
'''), N_CHK),
    "naive_assert_instead_of_value_error": ("conv2d_naive", naive(
        check='''    assert x.shape[1] == weight.shape[1], f"{x.shape[1]} != {weight.shape[1]}"
'''), N_CHK),
    # torch.zeros without dtype: float64 inputs give a float32 result
    "naive_output_float32": ("conv2d_naive", naive(
        out="    out = torch.zeros(n, c_out, h_out, w_out)\n"), N_CHK),
    # the padded buffer is float32: float64 inputs lose precision when padding > 0
    "naive_padded_buffer_float32": ("conv2d_naive", naive(
        pad="    x_pad = torch.zeros(n, c_in, h + 2 * ph, w + 2 * pw)\n    x_pad[:, :, ph:ph + h, pw:pw + w] = x\n"),
        N_CHK),
    # replicate padding (the border value repeated) instead of zeros
    "naive_replicate_padding": ("conv2d_naive", naive(
        pad="    x_pad = F.pad(x, (pw, pw, ph, ph), mode='replicate')\n"), N_SP | N_CHK),
    "naive_calls_F_conv2d": ("conv2d_naive", NAIVE_SIG + NAIVE_CHECK
                             + "    return F.conv2d(x, weight, bias, stride=stride, padding=padding)\n", NAIVE_ALL),
}

# --------------------------------------------------------------------------- conv2d
CONV_SIG = "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
CONV_CHECK = NAIVE_CHECK


def conv(*, check=CONV_CHECK, pairs="    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)\n",
         pad="    x = F.pad(x, (pw, pw, ph, ph))\n",
         windows="    windows = x.unfold(2, kh, sh).unfold(3, kw, sw)\n",
         einsum="torch.einsum('ncijuv,ocuv->noij', windows, weight)",
         bias_line="    if bias is not None:\n        out = out + bias.view(1, -1, 1, 1)\n"):
    """A Tensor.unfold + einsum conv2d (a common student solution) with one part replaced."""
    return (CONV_SIG + check + pairs + "    kh, kw = weight.shape[2:]\n" + pad + windows
            + f"    out = {einsum}\n" + bias_line + "    return out\n")


def conv_strided(*, sizes="    h_out = (h + 2 * ph - kh) // sh + 1\n    w_out = (w + 2 * pw - kw) // sw + 1\n",
                 view="    s_n, s_c, s_h, s_w = x.stride()\n", cont="    x = x.contiguous()\n"):
    """An as_strided + matmul conv2d (the reference approach) with one part replaced."""
    return (CONV_SIG + CONV_CHECK + '''    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
''' + sizes + "    x = F.pad(x, (pw, pw, ph, ph))\n" + cont + view + '''    windows = x.as_strided((n, c_in, kh, kw, h_out, w_out), (s_n, s_c, s_h, s_w, s_h * sh, s_w * sw))
    out = weight.reshape(c_out, -1) @ windows.reshape(n, c_in * kh * kw, h_out * w_out)
    if bias is not None:
        out = out + bias.view(1, c_out, 1)
    return out.view(n, c_out, h_out, w_out)
''')


MISTAKES.update({
    # F.pad takes the LAST dimension first: (left, right, top, bottom); here the height's padding
    # goes to the width and vice versa (only visible when the two paddings differ)
    "conv_F_pad_order": ("conv2d", conv(pad="    x = F.pad(x, (ph, ph, pw, pw))\n"), C_SP | C_CHK),
    # padding only on the right and at the bottom, twice as much
    "conv_pad_one_side": ("conv2d", conv(pad="    x = F.pad(x, (0, 2 * pw, 0, 2 * ph))\n"), C_SP | C_CHK),
    # the output size formula without "+ 1"
    "conv_output_size_missing_plus_one": ("conv2d", conv_strided(
        sizes="    h_out = (h + 2 * ph - kh) // sh\n    w_out = (w + 2 * pw - kw) // sw\n"), CONV_ALL),
    "conv_stride_ignored_horizontally": ("conv2d", conv(
        windows="    windows = x.unfold(2, kh, sh).unfold(3, kw, 1)\n"), C_SP | C_CHK),
    "conv_pairs_swapped": ("conv2d", conv(pairs="    (sw, sh), (pw, ph) = as_pair(stride), as_pair(padding)\n"),
                           C_SP | C_CHK),
    "conv_flipped_kernel": ("conv2d", conv(
        einsum="torch.einsum('ncijuv,ocuv->noij', windows, weight.flip(-2, -1))"), CONV_ALL),
    # weight read as (C_in, C_out, kH, kW)
    "conv_weight_as_in_out": ("conv2d", conv(
        einsum="torch.einsum('ncijuv,couv->noij', windows, weight)"), CONV_ALL),
    # broadcasting version that sums over the output channels instead of the input channels
    "conv_sum_over_wrong_channel_axis": ("conv2d", conv(
        einsum="(windows.unsqueeze(1) * weight[None, :, :, None, None]).sum(dim=(1, 5, 6))"), CONV_ALL),
    # `out + bias` broadcasts the bias along the width
    "conv_bias_broadcast_on_width": ("conv2d", conv(
        bias_line="    if bias is not None:\n        out = out + bias\n"), CONV_ALL),
    "conv_if_bias_truthiness": ("conv2d", conv(
        bias_line="    if bias:\n        out = out + bias.view(1, -1, 1, 1)\n"), CONV_ALL),
    "conv_bias_ignored": ("conv2d", conv(bias_line=""), CONV_ALL),
    "conv_no_value_error": ("conv2d", conv(check=""), C_CHK),
    "conv_value_error_without_numbers": ("conv2d", conv(
        check='''    if x.shape[1] != weight.shape[1]:
        raise ValueError("channel mismatch")
'''), C_CHK),
    # zero padding by hand in a float32 buffer: float64 inputs come back as float32
    "conv_padded_buffer_float32": ("conv2d", conv(pad='''    n, c, h, w = x.shape
    x_pad = torch.zeros(n, c, h + 2 * ph, w + 2 * pw)
    x_pad[:, :, ph:ph + h, pw:pw + w] = x
    x = x_pad
'''), C_CHK),
    # strides computed for a contiguous layout without calling .contiguous(): wrong for other layouts
    "conv_assumes_contiguous_layout": ("conv2d", conv_strided(
        cont="", view="    s_n, s_c, s_h, s_w = x.shape[1] * x.shape[2] * x.shape[3], x.shape[2] * x.shape[3], x.shape[3], 1\n"),
        C | C_SP),
    # vectorized over positions but a Python loop over the images of the batch
    "conv_loop_over_batch": ("conv2d", CONV_SIG + CONV_CHECK + '''    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    kh, kw = weight.shape[2:]
    outs = []
    for image in F.pad(x, (pw, pw, ph, ph)):
        windows = image.unfold(1, kh, sh).unfold(2, kw, sw)
        outs.append(torch.einsum('cijuv,ocuv->oij', windows, weight))
    out = torch.stack(outs)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out
''', C_VEC),
    # the loops of conv2d_naive reused: correct but not vectorized
    "conv_calls_naive": ("conv2d", CONV_SIG + "    return conv2d_naive(x, weight, bias, stride, padding)\n", C_VEC),
    "conv_calls_F_conv2d": ("conv2d", CONV_SIG + CONV_CHECK
                            + "    return F.conv2d(x, weight, bias, stride=stride, padding=padding)\n", CONV_ALL),
    "conv_imported_conv2d_alias": ("conv2d", "from torch.nn.functional import conv2d as fast_conv\n\n\n" + CONV_SIG
                                   + CONV_CHECK + "    return fast_conv(x, weight, bias, stride, padding)\n", CONV_ALL),
    "conv_uses_F_unfold": ("conv2d", CONV_SIG + CONV_CHECK + '''    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    cols = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))
    out = weight.reshape(c_out, -1) @ cols
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out.view(n, c_out, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
''', CONV_ALL),
    # catches the error of the forbidden call and falls back to a correct vectorized version
    "conv_forbidden_call_in_try": ("conv2d", conv(pad='''    try:
        return F.conv2d(x, weight, bias, stride=stride, padding=padding)
    except Exception:
        pass
    x = F.pad(x, (pw, pw, ph, ph))
'''), CONV_ALL),
})

# --------------------------------------------------------------------------- max_pool2d
POOL_SIG = "def max_pool2d(x, kernel_size, stride=None):\n"
POOL_PAIRS = '''    kh, kw = as_pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else as_pair(stride)
'''


def pool_loops(*, pairs=POOL_PAIRS, sizes="    h_out, w_out = (h - kh) // sh + 1, (w - kw) // sw + 1\n",
               out="    out = x.new_zeros(n, c, h_out, w_out)\n",
               value="x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].amax(dim=(-2, -1))"):
    """A loop-over-positions max_pool2d with one part replaced."""
    return (POOL_SIG + pairs + "    n, c, h, w = x.shape\n" + sizes + out
            + "    for i in range(h_out):\n        for j in range(w_out):\n"
            + f"            out[:, :, i, j] = {value}\n    return out\n")


MISTAKES.update({
    # the default stride taken as 1 (overlapping windows) instead of kernel_size
    "pool_default_stride_1": ("max_pool2d", POOL_SIG + '''    kh, kw = as_pair(kernel_size)
    sh, sw = (1, 1) if stride is None else as_pair(stride)
    return x.unfold(2, kh, sh).unfold(3, kw, sw).amax(dim=(-2, -1))
''', POOL_ALL),
    # the stride argument ignored: always stride = kernel_size
    "pool_stride_ignored": ("max_pool2d", POOL_SIG + '''    kh, kw = as_pair(kernel_size)
    return x.unfold(2, kh, kh).unfold(3, kw, kw).amax(dim=(-2, -1))
''', POOL_ALL),
    "pool_average_instead_of_max": ("max_pool2d", pool_loops(
        value="x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].mean(dim=(-2, -1))"), POOL_ALL),
    # running maximum started at 0: windows of negative numbers give 0
    "pool_running_max_starts_at_zero": ("max_pool2d", POOL_SIG + POOL_PAIRS + '''    n, c, h, w = x.shape
    h_out, w_out = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = x.new_zeros(n, c, h_out, w_out)
    for i in range(h_out):
        for j in range(w_out):
            for u in range(kh):
                for v in range(kw):
                    out[:, :, i, j] = torch.maximum(out[:, :, i, j], x[:, :, i * sh + u, j * sw + v])
    return out
''', POOL_ALL),
    # reshape into blocks: needs sizes divisible by the kernel and ignores the stride
    "pool_reshape_blocks": ("max_pool2d", POOL_SIG + '''    kh, kw = as_pair(kernel_size)
    n, c, h, w = x.shape
    return x.reshape(n, c, h // kh, kh, w // kw, kw).amax(dim=(3, 5))
''', POOL_ALL),
    # output size rounded up (ceil_mode) instead of down
    "pool_output_size_ceil": ("max_pool2d", pool_loops(
        sizes="    h_out, w_out = -(-(h - kh) // sh) + 1, -(-(w - kw) // sw) + 1\n"), POOL_ALL),
    "pool_pairs_swapped": ("max_pool2d", pool_loops(pairs='''    kw, kh = as_pair(kernel_size)
    sw, sh = (kw, kh) if stride is None else as_pair(stride)
'''), P_PAIRS),
    # torch.zeros without dtype: float64 inputs give a float32 result
    "pool_output_float32": ("max_pool2d", pool_loops(out="    out = torch.zeros(n, c, h_out, w_out)\n"), POOL_ALL),
    # int-only code: `kernel_size, kernel_size` breaks on pairs
    "pool_ints_only": ("max_pool2d", POOL_SIG + '''    stride = kernel_size if stride is None else stride
    return x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride).amax(dim=(-2, -1))
''', P_PAIRS),
    "pool_calls_F_max_pool2d": ("max_pool2d", POOL_SIG + "    return F.max_pool2d(x, kernel_size, stride)\n", POOL_ALL),
})

# One submission with one typical mistake in every answer cell (graded through the real nbgrader
# pipeline): answer grade_id -> replacement source.
COMBINED = {
    "conv2d_naive": MISTAKES["naive_output_float32"][1],      # -1 (test_conv2d_naive_checks)
    "conv2d": MISTAKES["conv_F_pad_order"][1],                # -3 (stride_padding, checks)
    "max_pool2d": MISTAKES["pool_pairs_swapped"][1],          # -1 (test_max_pool2d_stride_pairs)
}
COMBINED_EXPECTED_SCORE = 9.0  # of 14


# The mistakes that use a routine the lab's POLICY forbids: exactly these are flagged by the
# grader's reading of the source (grading/static.py).
FORBIDDEN = {
    "conv_calls_F_conv2d",
    "conv_forbidden_call_in_try",
    "conv_imported_conv2d_alias",
    "conv_uses_F_unfold",
    "naive_calls_F_conv2d",
    "pool_calls_F_max_pool2d",
}
