"""Typical mistakes for lab1-init: each must fail exactly the listed test cells.

Each entry: short name -> (answer grade_id, full replacement source of that answer cell as a
student would write it, set of test grade_ids that must FAIL). A mistake in compute_fans or
calculate_gain also fails the tests of the initializers that call them, when (and only when)
it changes their output by more than the statistical tolerance (~1%): e.g. swapped fans
change nothing for Xavier (it uses fan_in + fan_out) but do for Kaiming; a leaky slope of
0.01 instead of 0 changes the Kaiming std by 0.005% and is caught by calculate_gain's tests only.

Every call a test makes to an answer is guarded by the lab's rule (courselib.labcheck.Forbidden), which
also reads the notebook functions the answer calls: code that uses torch.nn.init fails every test
cell of its function, the *_api cells included, and those of the initializers that call it.
"""
# --------------------------------------------------------------------------- test-cell groups
FANS = {"test_compute_fans"}
FANS_ERR = {"test_compute_fans_errors"}
GAIN = {"test_calculate_gain"}
GAIN_PARAM = {"test_calculate_gain_param"}
XU, XU_API = {"test_xavier_uniform_"}, {"test_xavier_uniform_api"}
XN, XN_API = {"test_xavier_normal_"}, {"test_xavier_normal_api"}
KU, KU_OPT, KU_API = {"test_kaiming_uniform_"}, {"test_kaiming_uniform_options"}, {"test_kaiming_uniform_api"}
KN, KN_OPT, KN_API = {"test_kaiming_normal_"}, {"test_kaiming_normal_options"}, {"test_kaiming_normal_api"}
XAVIER = XU | XN
KAIMING_MAIN = KU | KN
KAIMING_OPT = KU_OPT | KN_OPT
# every test cell of a function (what code that uses torch.nn.init fails)
XU_ALL, XN_ALL = XU | XU_API, XN | XN_API
KU_ALL, KN_ALL = KU | KU_OPT | KU_API, KN | KN_OPT | KN_API


# --------------------------------------------------------------------------- compute_fans
FANS_SIG = "def compute_fans(weight: torch.Tensor) -> tuple[int, int]:\n"
FANS_CHECK = '''    if weight.dim() < 2:
        raise ValueError("need at least 2 dimensions")
'''

MISTAKES = {
    # dimension 0 read as the input (TensorFlow's (in, out) layout): Xavier is symmetric, Kaiming is not
    "fans_swapped_dims": ("compute_fans", FANS_SIG + FANS_CHECK + '''    rf = math.prod(weight.shape[2:])
    return weight.shape[0] * rf, weight.shape[1] * rf
''', FANS | KAIMING_MAIN | KAIMING_OPT),
    # returns (fan_out, fan_in)
    "fans_returned_in_wrong_order": ("compute_fans", FANS_SIG + FANS_CHECK + '''    rf = math.prod(weight.shape[2:])
    fan_in, fan_out = weight.shape[1] * rf, weight.shape[0] * rf
    return fan_out, fan_in
''', FANS | KAIMING_MAIN | KAIMING_OPT),
    "receptive_field_forgotten": ("compute_fans", FANS_SIG + FANS_CHECK + '''    return weight.shape[1], weight.shape[0]
''', FANS | XAVIER | KAIMING_MAIN | KAIMING_OPT),
    "receptive_field_only_in_fan_in": ("compute_fans", FANS_SIG + FANS_CHECK + '''    rf = math.prod(weight.shape[2:])
    return weight.shape[1] * rf, weight.shape[0]
''', FANS | XAVIER | KAIMING_OPT),
    # written for Conv2d only: Conv1d crashes, Conv3d ignores the depth of the kernel
    "conv2d_only_kernel": ("compute_fans", FANS_SIG + FANS_CHECK + '''    rf = 1
    if weight.dim() > 2:
        rf = weight.shape[2] * weight.shape[3]
    return weight.shape[1] * rf, weight.shape[0] * rf
''', FANS | XAVIER | KAIMING_MAIN | KAIMING_OPT),
    "receptive_field_sum": ("compute_fans", FANS_SIG + FANS_CHECK + '''    rf = sum(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * rf, weight.shape[0] * rf
''', FANS | XAVIER | KAIMING_MAIN | KAIMING_OPT),
    # no check: a 1-D tensor gives an IndexError instead of a ValueError
    "no_value_error": ("compute_fans", FANS_SIG + '''    rf = math.prod(weight.shape[2:])
    return weight.shape[1] * rf, weight.shape[0] * rf
''', FANS_ERR),
    "assert_instead_of_value_error": ("compute_fans", FANS_SIG + '''    assert weight.dim() >= 2, "fans need at least 2 dimensions"
    rf = math.prod(weight.shape[2:])
    return weight.shape[1] * rf, weight.shape[0] * rf
''', FANS_ERR),
    # np.prod(()) is the float 1.0: a Linear weight gets float fans (the visible checks still pass)
    "numpy_prod_float_fans": ("compute_fans", FANS_SIG + '''    import numpy as np
    if weight.dim() < 2:
        raise ValueError("need at least 2 dimensions")
    rf = np.prod(weight.shape[2:])
    return weight.shape[1] * rf, weight.shape[0] * rf
''', FANS),
    "calls_torch_builtin": ("compute_fans", FANS_SIG + '''    return torch.nn.init._calculate_fan_in_and_fan_out(weight)
''', FANS | FANS_ERR | XU_ALL | XN_ALL | KU_ALL | KN_ALL),
}

# --------------------------------------------------------------------------- calculate_gain
GAIN_SIG = "def calculate_gain(nonlinearity: str, param: float | None = None) -> float:\n"
LINEAR_LIKE = '''    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                        "conv_transpose2d", "conv_transpose3d", "sigmoid"):
        return 1.0
'''


def gain_cell(tanh="5.0 / 3.0", relu="math.sqrt(2.0)", leaky="math.sqrt(2.0 / (1 + slope ** 2))",
              slope="0.01 if param is None else param", selu="0.75", linear=LINEAR_LIKE,
              last='    raise ValueError(f"unsupported nonlinearity {nonlinearity}")\n'):
    return (GAIN_SIG + linear + f'''    if nonlinearity == "tanh":
        return {tanh}
    if nonlinearity == "relu":
        return {relu}
    if nonlinearity == "leaky_relu":
        slope = {slope}
        return {leaky}
    if nonlinearity == "selu":
        return {selu}
''' + last)


MISTAKES.update({
    # the 2 of Var(W) = 2 / fan_in used as the gain (a gain multiplies the std)
    "relu_gain_2": ("calculate_gain", gain_cell(relu="2.0"), GAIN | KAIMING_MAIN | KAIMING_OPT),
    "gains_as_variances": ("calculate_gain", gain_cell(relu="2.0", leaky="2.0 / (1 + slope ** 2)"),
                           GAIN | GAIN_PARAM | KAIMING_MAIN | KAIMING_OPT),
    "tanh_gain_1": ("calculate_gain", gain_cell(tanh="1.0"), GAIN | KAIMING_OPT),
    "selu_gain_1": ("calculate_gain", gain_cell(selu="1.0"), GAIN | KAIMING_OPT),
    "leaky_default_slope_0": ("calculate_gain", gain_cell(slope="0.0 if param is None else param"), GAIN_PARAM),
    # `param or 0.01` turns an explicit slope 0 into 0.01 (invisible in Kaiming's std: 0.005%)
    "leaky_falsy_zero_slope": ("calculate_gain", gain_cell(slope="param or 0.01"), GAIN_PARAM),
    "leaky_slope_ignored": ("calculate_gain", gain_cell(slope="0.01"), GAIN_PARAM | KAIMING_OPT),
    "leaky_slope_not_squared": ("calculate_gain", gain_cell(leaky="math.sqrt(2.0 / (1 + slope))"),
                                GAIN_PARAM | KAIMING_OPT),
    # operator precedence: 2.0 / 1 + slope ** 2
    "leaky_precedence_bug": ("calculate_gain", gain_cell(leaky="math.sqrt(2.0 / 1 + slope ** 2)"),
                             GAIN_PARAM | KAIMING_OPT),
    "unknown_name_returns_1": ("calculate_gain", gain_cell(last="    return 1.0\n"), GAIN),
    "conv_names_missing": ("calculate_gain", gain_cell(linear='''    if nonlinearity in ("linear", "sigmoid"):
        return 1.0
'''), GAIN | KAIMING_OPT),
    # relu treated as leaky_relu: an explicit param changes the relu gain
    "param_used_for_relu": ("calculate_gain", GAIN_SIG + LINEAR_LIKE + '''    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity in ("relu", "leaky_relu"):
        if param is None:
            param = 0.0 if nonlinearity == "relu" else 0.01
        return math.sqrt(2.0 / (1 + param ** 2))
    if nonlinearity == "selu":
        return 0.75
    raise ValueError(f"unsupported nonlinearity {nonlinearity}")
''', GAIN_PARAM | KAIMING_OPT),
    "returns_tensor": ("calculate_gain", gain_cell(relu="torch.tensor(2.0).sqrt()"), GAIN),
    "calls_torch_builtin_gain": ("calculate_gain", GAIN_SIG + '''    return torch.nn.init.calculate_gain(nonlinearity, param)
''', GAIN | GAIN_PARAM | KU_ALL | KN_ALL),
})

# --------------------------------------------------------------------------- xavier_uniform_
XU_SIG = "def xavier_uniform_(tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:\n"
XU_FANS = "    fan_in, fan_out = compute_fans(tensor)\n"


def xu_cell(bound="gain * math.sqrt(6.0 / (fan_in + fan_out))",
            fill="    with torch.no_grad():\n        return tensor.uniform_(-bound, bound)\n"):
    return XU_SIG + XU_FANS + f"    bound = {bound}\n" + fill


MISTAKES.update({
    # LeCun's variance 1/fan_in instead of Glorot's 2/(fan_in + fan_out)
    "xu_lecun_variance": ("xavier_uniform_", xu_cell(bound="gain * math.sqrt(3.0 / fan_in)"), XU),
    "xu_kaiming_variance": ("xavier_uniform_", xu_cell(bound="gain * math.sqrt(6.0 / fan_in)"), XU),
    "xu_std_used_as_bound": ("xavier_uniform_", xu_cell(bound="gain * math.sqrt(2.0 / (fan_in + fan_out))"), XU),
    "xu_bound_without_sqrt": ("xavier_uniform_", xu_cell(bound="gain * 6.0 / (fan_in + fan_out)"), XU),
    "xu_gain_ignored": ("xavier_uniform_", xu_cell(bound="math.sqrt(6.0 / (fan_in + fan_out))"), XU),
    "xu_gain_squared": ("xavier_uniform_", xu_cell(bound="gain ** 2 * math.sqrt(6.0 / (fan_in + fan_out))"), XU),
    # the right variance, the wrong distribution
    "xu_normal_instead_of_uniform": ("xavier_uniform_", xu_cell(
        fill="    with torch.no_grad():\n        return tensor.normal_(0.0, bound / math.sqrt(3.0))\n"), XU),
    "xu_rand_not_centered": ("xavier_uniform_", xu_cell(
        fill="    with torch.no_grad():\n        tensor.copy_(torch.rand_like(tensor) * bound)\n    return tensor\n"), XU),
    "xu_receptive_field_forgotten": ("xavier_uniform_", XU_SIG + '''    fan_in, fan_out = tensor.shape[1], tensor.shape[0]
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.uniform_(-bound, bound)
''', XU),
    "xu_calls_torch_builtin": ("xavier_uniform_", XU_SIG + "    return torch.nn.init.xavier_uniform_(tensor, gain)\n", XU_ALL),
    "xu_returns_new_tensor": ("xavier_uniform_", xu_cell(
        fill="    return torch.empty_like(tensor).uniform_(-bound, bound)\n"), XU_API),
    "xu_returns_new_float32_tensor": ("xavier_uniform_", xu_cell(
        fill="    return torch.rand(tensor.shape) * 2 * bound - bound\n"), XU_API),
    "xu_returns_none": ("xavier_uniform_", xu_cell(
        fill="    with torch.no_grad():\n        tensor.uniform_(-bound, bound)\n"), XU_API),
    "xu_replaces_data": ("xavier_uniform_", xu_cell(
        fill="    tensor.data = torch.empty_like(tensor).uniform_(-bound, bound)\n    return tensor\n"), XU_API),
    "xu_no_no_grad": ("xavier_uniform_", xu_cell(fill="    return tensor.uniform_(-bound, bound)\n"), XU_API),
    "xu_grad_disabled_globally": ("xavier_uniform_", xu_cell(
        fill="    torch.set_grad_enabled(False)\n    return tensor.uniform_(-bound, bound)\n"), XU_API),
    "xu_reseeds": ("xavier_uniform_", xu_cell(
        fill="    torch.manual_seed(0)\n    with torch.no_grad():\n        return tensor.uniform_(-bound, bound)\n"), XU_API),
    "xu_new_generator": ("xavier_uniform_", xu_cell(
        fill="    g = torch.Generator()\n    with torch.no_grad():\n        return tensor.uniform_(-bound, bound, generator=g)\n"),
        XU_API),
    "xu_numpy_rng": ("xavier_uniform_", xu_cell(
        fill="    import numpy as np\n    values = torch.from_numpy(np.random.uniform(-bound, bound, tuple(tensor.shape)))\n"
             "    with torch.no_grad():\n        return tensor.copy_(values)\n"), XU_API),
})

# --------------------------------------------------------------------------- xavier_normal_
XN_SIG = "def xavier_normal_(tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:\n"


def xn_cell(std="gain * math.sqrt(2.0 / (fan_in + fan_out))",
            fill="    with torch.no_grad():\n        return tensor.normal_(0.0, std)\n"):
    return XN_SIG + XU_FANS + f"    std = {std}\n" + fill


MISTAKES.update({
    "xn_lecun_variance": ("xavier_normal_", xn_cell(std="gain / math.sqrt(fan_in)"), XN),
    "xn_factor_2_missing": ("xavier_normal_", xn_cell(std="gain * math.sqrt(1.0 / (fan_in + fan_out))"), XN),
    "xn_bound_used_as_std": ("xavier_normal_", xn_cell(std="gain * math.sqrt(6.0 / (fan_in + fan_out))"), XN),
    "xn_variance_used_as_std": ("xavier_normal_", xn_cell(std="gain * 2.0 / (fan_in + fan_out)"), XN),
    # operator precedence: 2.0 / fan_in + fan_out
    "xn_precedence_bug": ("xavier_normal_", xn_cell(std="gain * math.sqrt(2.0 / fan_in + fan_out)"), XN),
    "xn_gain_ignored": ("xavier_normal_", xn_cell(std="math.sqrt(2.0 / (fan_in + fan_out))"), XN),
    "xn_uniform_instead_of_normal": ("xavier_normal_", xn_cell(
        fill="    b = math.sqrt(3.0) * std\n    with torch.no_grad():\n        return tensor.uniform_(-b, b)\n"), XN),
    "xn_calls_torch_builtin": ("xavier_normal_", XN_SIG + "    return torch.nn.init.xavier_normal_(tensor, gain=gain)\n", XN_ALL),
    "xn_returns_new_tensor": ("xavier_normal_", xn_cell(fill="    return torch.randn_like(tensor) * std\n"), XN_API),
    "xn_returns_none": ("xavier_normal_", xn_cell(
        fill="    with torch.no_grad():\n        tensor.normal_(0.0, std)\n"), XN_API),
    # .float() returns a new float32 tensor for a float64 input
    "xn_casts_to_float32": ("xavier_normal_", xn_cell(
        fill="    with torch.no_grad():\n        return tensor.normal_(0.0, std).float()\n"), XN_API),
    "xn_no_no_grad": ("xavier_normal_", xn_cell(fill="    return tensor.normal_(0.0, std)\n"), XN_API),
    "xn_reseeds": ("xavier_normal_", xn_cell(
        fill="    torch.manual_seed(42)\n    with torch.no_grad():\n        return tensor.normal_(0.0, std)\n"), XN_API),
    "xn_python_random": ("xavier_normal_", xn_cell(
        fill="    import random\n    values = torch.tensor([random.gauss(0.0, std) for _ in range(tensor.numel())])\n"
             "    with torch.no_grad():\n        return tensor.copy_(values.view(tensor.shape))\n"), XN_API),
})

# --------------------------------------------------------------------------- kaiming_*
KU_SIG = ('def kaiming_uniform_(tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in",\n'
          '                     nonlinearity: str = "leaky_relu") -> torch.Tensor:\n')
KN_SIG = ('def kaiming_normal_(tensor: torch.Tensor, a: float = 0.0, mode: str = "fan_in",\n'
          '                    nonlinearity: str = "leaky_relu") -> torch.Tensor:\n')
MODE_CHECK = '''    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"bad mode {mode}")
'''
FAN = '''    fan_in, fan_out = compute_fans(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
'''
GAIN_LINE = "    gain = calculate_gain(nonlinearity, a)\n"


def k_cell(sig, check=MODE_CHECK, fan=FAN, gain=GAIN_LINE, scale="", fill=""):
    return sig + check + fan + gain + scale + fill


def ku_cell(check=MODE_CHECK, fan=FAN, gain=GAIN_LINE, bound="gain * math.sqrt(3.0 / fan)",
            fill="    with torch.no_grad():\n        return tensor.uniform_(-bound, bound)\n"):
    return k_cell(KU_SIG, check, fan, gain, f"    bound = {bound}\n", fill)


def kn_cell(check=MODE_CHECK, fan=FAN, gain=GAIN_LINE, std="gain / math.sqrt(fan)",
            fill="    with torch.no_grad():\n        return tensor.normal_(0.0, std)\n"):
    return k_cell(KN_SIG, check, fan, gain, f"    std = {std}\n", fill)


FAN_IGNORES_MODE = "    fan_in, fan_out = compute_fans(tensor)\n    fan = fan_in\n"
FAN_INVERTED = '''    fan_in, fan_out = compute_fans(tensor)
    fan = fan_out if mode == "fan_in" else fan_in
'''
FAN_INLINE_NO_RF = '''    fan = tensor.shape[1] if mode == "fan_in" else tensor.shape[0]
'''
FAN_SUM = "    fan_in, fan_out = compute_fans(tensor)\n    fan = fan_in + fan_out\n"
GAIN_NO_A = "    gain = calculate_gain(nonlinearity)\n"
GAIN_RELU = "    gain = math.sqrt(2.0)\n"
ASSERT_MODE = '    assert mode in ("fan_in", "fan_out"), "bad mode"\n'

MISTAKES.update({
    "ku_mode_ignored": ("kaiming_uniform_", ku_cell(check="", fan=FAN_IGNORES_MODE), KU_OPT),
    "ku_mode_inverted": ("kaiming_uniform_", ku_cell(fan=FAN_INVERTED), KU | KU_OPT),
    "ku_no_mode_validation": ("kaiming_uniform_", ku_cell(check=""), KU_OPT),
    "ku_assert_for_mode": ("kaiming_uniform_", ku_cell(check=ASSERT_MODE), KU_OPT),
    "ku_std_used_as_bound": ("kaiming_uniform_", ku_cell(bound="gain / math.sqrt(fan)"), KU | KU_OPT),
    "ku_gain_hardcoded_relu": ("kaiming_uniform_", ku_cell(gain=GAIN_RELU), KU_OPT),
    "ku_slope_a_not_passed": ("kaiming_uniform_", ku_cell(gain=GAIN_NO_A), KU_OPT),
    "ku_fan_in_plus_fan_out": ("kaiming_uniform_", ku_cell(fan=FAN_SUM), KU | KU_OPT),
    # sqrt(6 / fan) is the ReLU bound already: multiplying by the gain counts the 2 twice
    "ku_gain_counted_twice": ("kaiming_uniform_", ku_cell(bound="gain * math.sqrt(6.0 / fan)"), KU | KU_OPT),
    "ku_gain_missing": ("kaiming_uniform_", ku_cell(bound="math.sqrt(3.0 / fan)"), KU | KU_OPT),
    "ku_receptive_field_forgotten": ("kaiming_uniform_", ku_cell(fan=FAN_INLINE_NO_RF), KU | KU_OPT),
    "ku_normal_instead_of_uniform": ("kaiming_uniform_", ku_cell(
        fill="    with torch.no_grad():\n        return tensor.normal_(0.0, bound / math.sqrt(3.0))\n"), KU | KU_OPT),
    "ku_calls_torch_builtin": ("kaiming_uniform_", KU_SIG + "    return torch.nn.init.kaiming_uniform_(tensor, a, mode, nonlinearity)\n",
                               KU_ALL),
    "ku_returns_new_tensor": ("kaiming_uniform_", ku_cell(
        fill="    return torch.empty_like(tensor).uniform_(-bound, bound)\n"), KU_API),
    "ku_returns_none": ("kaiming_uniform_", ku_cell(
        fill="    with torch.no_grad():\n        tensor.uniform_(-bound, bound)\n"), KU_API),
    "ku_no_no_grad": ("kaiming_uniform_", ku_cell(fill="    return tensor.uniform_(-bound, bound)\n"), KU_API),
    "ku_new_generator": ("kaiming_uniform_", ku_cell(
        fill="    g = torch.Generator()\n    with torch.no_grad():\n        return tensor.uniform_(-bound, bound, generator=g)\n"),
        KU_API),

    "kn_mode_ignored": ("kaiming_normal_", kn_cell(check="", fan=FAN_IGNORES_MODE), KN_OPT),
    "kn_mode_inverted": ("kaiming_normal_", kn_cell(fan=FAN_INVERTED), KN | KN_OPT),
    "kn_no_mode_validation": ("kaiming_normal_", kn_cell(check=""), KN_OPT),
    "kn_variance_used_as_std": ("kaiming_normal_", kn_cell(std="gain ** 2 / fan"), KN | KN_OPT),
    "kn_bound_used_as_std": ("kaiming_normal_", kn_cell(std="gain * math.sqrt(3.0 / fan)"), KN | KN_OPT),
    "kn_gain_hardcoded_relu": ("kaiming_normal_", kn_cell(gain=GAIN_RELU), KN_OPT),
    "kn_slope_a_not_passed": ("kaiming_normal_", kn_cell(gain=GAIN_NO_A), KN_OPT),
    # LeCun: no gain at all
    "kn_gain_missing": ("kaiming_normal_", kn_cell(std="1.0 / math.sqrt(fan)"), KN | KN_OPT),
    "kn_receptive_field_forgotten": ("kaiming_normal_", kn_cell(fan=FAN_INLINE_NO_RF), KN | KN_OPT),
    "kn_uniform_instead_of_normal": ("kaiming_normal_", kn_cell(
        fill="    b = math.sqrt(3.0) * std\n    with torch.no_grad():\n        return tensor.uniform_(-b, b)\n"), KN | KN_OPT),
    # a truncated normal (cut at 2 std, as some libraries do) has a smaller std and the wrong shape;
    # torch.nn.init.trunc_normal_ is also torch.nn.init, which the lab's rule forbids
    "kn_truncated_normal": ("kaiming_normal_", kn_cell(
        fill="    with torch.no_grad():\n        return torch.nn.init.trunc_normal_(tensor, 0.0, std, -2 * std, 2 * std)\n"),
        KN_ALL),
    # tensor.normal_(std) means mean=std, std=1
    "kn_normal_args_swapped": ("kaiming_normal_", kn_cell(
        fill="    with torch.no_grad():\n        return tensor.normal_(std)\n"), KN | KN_OPT),
    "kn_calls_torch_builtin": ("kaiming_normal_", KN_SIG + "    return torch.nn.init.kaiming_normal_(tensor, a=a, mode=mode, nonlinearity=nonlinearity)\n",
                               KN_ALL),
    "kn_returns_new_tensor": ("kaiming_normal_", kn_cell(
        fill="    return torch.randn(tensor.shape, dtype=tensor.dtype) * std\n"), KN_API),
    "kn_returns_none": ("kaiming_normal_", kn_cell(
        fill="    with torch.no_grad():\n        tensor.normal_(0.0, std)\n"), KN_API),
    # tensor.data is another Python object (sharing the storage): not the tensor that was passed
    "kn_returns_tensor_data": ("kaiming_normal_", kn_cell(fill="    return tensor.data.normal_(0.0, std)\n"), KN_API),
    "kn_no_no_grad": ("kaiming_normal_", kn_cell(fill="    return tensor.normal_(0.0, std)\n"), KN_API),
    "kn_grad_disabled_globally": ("kaiming_normal_", kn_cell(
        fill="    torch.set_grad_enabled(False)\n    return tensor.normal_(0.0, std)\n"), KN_API),
    "kn_replaces_data": ("kaiming_normal_", kn_cell(
        fill="    tensor.data = torch.randn_like(tensor) * std\n    return tensor\n"), KN_API),
    "kn_reseeds": ("kaiming_normal_", kn_cell(
        fill="    torch.manual_seed(0)\n    with torch.no_grad():\n        return tensor.normal_(0.0, std)\n"), KN_API),
})

# One submission with one typical mistake in EVERY answer cell (graded through nbgrader), chosen so
# that they do not interact: each loses exactly its own cell's points.
COMBINED = {
    "compute_fans": MISTAKES["no_value_error"][1],                  # -1 (test_compute_fans_errors)
    "calculate_gain": MISTAKES["leaky_default_slope_0"][1],         # -1 (test_calculate_gain_param)
    "xavier_uniform_": MISTAKES["xu_returns_new_tensor"][1],        # -1 (test_xavier_uniform_api)
    "xavier_normal_": MISTAKES["xn_lecun_variance"][1],             # -2 (test_xavier_normal_)
    "kaiming_uniform_": MISTAKES["ku_mode_ignored"][1],             # -1 (test_kaiming_uniform_options)
    "kaiming_normal_": MISTAKES["kn_no_no_grad"][1],                # -1 (test_kaiming_normal_api)
}
COMBINED_EXPECTED_SCORE = 13.0  # of 20


# The mistakes that use a routine the lab's POLICY forbids: exactly these are flagged by the
# grader's reading of the source (grading/static.py).
FORBIDDEN = {
    "calls_torch_builtin",
    "calls_torch_builtin_gain",
    "kn_calls_torch_builtin",
    "kn_truncated_normal",
    "ku_calls_torch_builtin",
    "xn_calls_torch_builtin",
    "xu_calls_torch_builtin",
}
