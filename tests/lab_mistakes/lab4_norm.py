"""Typical mistakes for lab4-norm: each must fail exactly the listed test cells.

Each entry: short name -> (answer grade_id, full replacement source of that answer cell as a
student would write it, set of test grade_ids that must FAIL). The answer cells are the reference
solution with the mistake edited in (``_edit``), so that each entry differs from a correct answer
by exactly its mistake.

BatchNorm2d is graded on its own: its probes run the class with a stand-in (a spy) or a correct
function in place of the student's batch_norm, so a mistake in batch_norm never fails the
BatchNorm2d cells. Code that uses a built-in normalization fails every test cell of its answer.
"""
# --------------------------------------------------------------------------- test-cell groups
BN, BN_RUN, BN_EVAL = {"test_batch_norm"}, {"test_batch_norm_running_stats"}, {"test_batch_norm_eval"}
BN_ALL = BN | BN_RUN | BN_EVAL
LN, LN_AFF = {"test_layer_norm"}, {"test_layer_norm_affine"}
GN, GN_SHAPES = {"test_group_norm"}, {"test_group_norm_shapes_errors"}
LAYER, LAYER_MODES = {"test_BatchNorm2d"}, {"test_BatchNorm2d_modes"}


def _edit(source: str, *edits: tuple[str, str]) -> str:
    """source with each (old, new) replacement made (old must occur)."""
    for old, new in edits:
        assert old in source, f"not in the reference answer: {old!r}"
        source = source.replace(old, new)
    return source


# --------------------------------------------------------------------------- batch_norm
BATCH_NORM = '''def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    if training:
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        m = x.numel() // x.shape[1]
        with torch.no_grad():
            if running_mean is not None:
                running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            if running_var is not None:
                running_var.mul_(1 - momentum).add_(var * (m / (m - 1)), alpha=momentum)
    else:
        mean, var = running_mean, running_var
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y
'''
RUNNING_UPDATE = '''        with torch.no_grad():
            if running_mean is not None:
                running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            if running_var is not None:
                running_var.mul_(1 - momentum).add_(var * (m / (m - 1)), alpha=momentum)
'''

MISTAKES = {
    # the unbiased variance everywhere (torch's default for var): right for the running variance only
    "bn_unbiased_variance": ("batch_norm", _edit(BATCH_NORM, ("var = x.var(dim=dims, unbiased=False)", "var = x.var(dim=dims)"),
                                                 ("var * (m / (m - 1))", "var")), BN),
    # the running variance updated with the biased variance used for normalizing
    "bn_running_var_biased": ("batch_norm", _edit(BATCH_NORM, ("var * (m / (m - 1))", "var")), BN_RUN),
    # Keras's convention: momentum is the weight of the old value
    "bn_momentum_reversed": ("batch_norm", _edit(BATCH_NORM,
                                                 ("running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)",
                                                  "running_mean.mul_(momentum).add_(mean, alpha=1 - momentum)"),
                                                 ("running_var.mul_(1 - momentum).add_(var * (m / (m - 1)), alpha=momentum)",
                                                  "running_var.mul_(momentum).add_(var * (m / (m - 1)), alpha=1 - momentum)")),
                             BN_RUN),
    # new tensors bound to the local names: the caller's running statistics never change
    "bn_running_stats_rebound": ("batch_norm", _edit(BATCH_NORM, (RUNNING_UPDATE, '''        if running_mean is not None:
            running_mean = (1 - momentum) * running_mean + momentum * mean.detach()
            running_var = (1 - momentum) * running_var + momentum * var.detach() * m / (m - 1)
''')), BN_RUN),
    # the storage replaced instead of updated in place
    "bn_running_stats_data_replaced": ("batch_norm", _edit(BATCH_NORM, (RUNNING_UPDATE, '''        if running_mean is not None:
            running_mean.data = (1 - momentum) * running_mean + momentum * mean.detach()
            running_var.data = (1 - momentum) * running_var + momentum * var.detach() * m / (m - 1)
''')), BN_RUN),
    # no torch.no_grad(): when x requires grad, the running statistics join the autograd graph
    "bn_running_stats_in_graph": ("batch_norm", _edit(BATCH_NORM, (RUNNING_UPDATE, '''        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        if running_var is not None:
            running_var.mul_(1 - momentum).add_(var * (m / (m - 1)), alpha=momentum)
''')), BN_RUN),
    "bn_eps_outside_sqrt": ("batch_norm", _edit(BATCH_NORM, ("/ torch.sqrt(var.view(shape) + eps)",
                                                              "/ (torch.sqrt(var.view(shape)) + eps)")), BN | BN_EVAL),
    # the batch statistics in both modes (the running statistics are updated but never used)
    "bn_eval_uses_batch_stats": ("batch_norm", _edit(BATCH_NORM, ('''    if training:
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        m = x.numel()''', '''    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=False)
    if training:
        m = x.numel()'''), ('''    else:
        mean, var = running_mean, running_var
''', "")), BN_EVAL),
    # statistics over the batch axis only, one per (channel, position): right for (N, C) only
    "bn_stats_over_batch_axis_only": ("batch_norm", _edit(BATCH_NORM, ("dims = [0] + list(range(2, x.dim()))", "dims = [0]")),
                                      BN | BN_RUN),
    # written for feature maps only: (N, C) and (N, C, L) inputs fail
    "bn_assumes_4d": ("batch_norm", _edit(BATCH_NORM, ("dims = [0] + list(range(2, x.dim()))", "dims = (0, 2, 3)"),
                                          ("shape = [1, -1] + [1] * (x.dim() - 2)", "shape = (1, -1, 1, 1)")), BN_ALL),
    # weight and bias broadcast against the LAST axis: right for (N, C) only
    "bn_weight_bias_on_last_axis": ("batch_norm", _edit(BATCH_NORM, ("y = y * weight.view(shape)", "y = y * weight"),
                                                        ("y = y + bias.view(shape)", "y = y + bias")), BN | BN_EVAL),
    # the batch statistics treated as constants: right output, wrong gradient
    "bn_detached_statistics": ("batch_norm", _edit(BATCH_NORM, ("mean = x.mean(dim=dims)", "mean = x.mean(dim=dims).detach()"),
                                                   ("var = x.var(dim=dims, unbiased=False)",
                                                    "var = x.var(dim=dims, unbiased=False).detach()")), BN),
    "bn_calls_F_batch_norm": ("batch_norm", '''def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
''', BN_ALL),
}

# --------------------------------------------------------------------------- layer_norm
LAYER_NORM = '''def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    dims = tuple(range(-len(normalized_shape), 0))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y
'''
MISTAKES.update({
    # the last axis only, whatever normalized_shape says
    "ln_last_axis_only": ("layer_norm", _edit(LAYER_NORM, ("dims = tuple(range(-len(normalized_shape), 0))", "dims = (-1,)")),
                          LN | LN_AFF),
    # chapter 5's per-sample layer norm (every axis but the batch), whatever normalized_shape says
    "ln_all_axes_but_the_first": ("layer_norm", _edit(LAYER_NORM, ("dims = tuple(range(-len(normalized_shape), 0))",
                                                                    "dims = tuple(range(1, x.dim()))")), LN | LN_AFF),
    "ln_unbiased_variance": ("layer_norm", _edit(LAYER_NORM, ("var = x.var(dim=dims, unbiased=False, keepdim=True)",
                                                              "var = x.var(dim=dims, keepdim=True)")), LN | LN_AFF),
    # an int normalized_shape not turned into a tuple: len() of an int
    "ln_int_normalized_shape_unhandled": ("layer_norm", _edit(LAYER_NORM, ('''    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
''', "")), LN | LN_AFF),
    # the bias only added together with a weight (and then added even when it is None)
    "ln_bias_only_with_weight": ("layer_norm", _edit(LAYER_NORM, ('''    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
''', '''    if weight is not None:
        y = y * weight + bias
''')), LN_AFF),
    "ln_detached_statistics": ("layer_norm", _edit(LAYER_NORM, ("mean = x.mean(dim=dims, keepdim=True)",
                                                                "mean = x.mean(dim=dims, keepdim=True).detach()"),
                                                   ("var = x.var(dim=dims, unbiased=False, keepdim=True)",
                                                    "var = x.var(dim=dims, unbiased=False, keepdim=True).detach()")), LN),
    "ln_calls_F_layer_norm": ("layer_norm", '''def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    return F.layer_norm(x, tuple(normalized_shape), weight, bias, eps)
''', LN | LN_AFF),
    "ln_calls_torch_native_layer_norm": ("layer_norm", '''def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    return torch.native_layer_norm(x, list(normalized_shape), weight, bias, eps)[0]
''', LN | LN_AFF),
})

# --------------------------------------------------------------------------- group_norm
GROUP_NORM = '''def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    n, c = x.shape[:2]
    if c % num_groups != 0:
        raise ValueError(f"the {c} channels of x cannot be split into {num_groups} groups of equal size")
    groups = x.reshape(n, num_groups, -1)
    mean = groups.mean(dim=2, keepdim=True)
    var = groups.var(dim=2, unbiased=False, keepdim=True)
    y = ((groups - mean) / torch.sqrt(var + eps)).reshape(x.shape)
    shape = [1, c] + [1] * (x.dim() - 2)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y
'''
GN_STATS = '''    groups = x.reshape(n, num_groups, -1)
    mean = groups.mean(dim=2, keepdim=True)
    var = groups.var(dim=2, unbiased=False, keepdim=True)
'''
MISTAKES.update({
    # channels c, c + G, c + 2G, ... grouped together (the reshape splits C the other way round)
    "gn_channels_grouped_with_stride": ("group_norm", _edit(GROUP_NORM, (GN_STATS, '''    groups = x.reshape(n, c // num_groups, num_groups, -1)
    mean = groups.mean(dim=(1, 3), keepdim=True)
    var = groups.var(dim=(1, 3), unbiased=False, keepdim=True)
''')), GN | GN_SHAPES),
    # statistics over the channels of a group at each position, not over the positions too
    "gn_stats_over_channels_only": ("group_norm", _edit(GROUP_NORM, (GN_STATS, '''    groups = x.reshape(n, num_groups, c // num_groups, -1)
    mean = groups.mean(dim=2, keepdim=True)
    var = groups.var(dim=2, unbiased=False, keepdim=True)
''')), GN | GN_SHAPES),
    "gn_unbiased_variance": ("group_norm", _edit(GROUP_NORM, ("var = groups.var(dim=2, unbiased=False, keepdim=True)",
                                                              "var = groups.var(dim=2, keepdim=True)")), GN | GN_SHAPES),
    # weight and bias broadcast against the LAST axis
    "gn_weight_bias_on_last_axis": ("group_norm", _edit(GROUP_NORM, ("y = y * weight.view(shape)", "y = y * weight"),
                                                        ("y = y + bias.view(shape)", "y = y + bias")), GN | GN_SHAPES),
    "gn_detached_statistics": ("group_norm", _edit(GROUP_NORM, ("mean = groups.mean(dim=2, keepdim=True)",
                                                                "mean = groups.mean(dim=2, keepdim=True).detach()"),
                                                   ("var = groups.var(dim=2, unbiased=False, keepdim=True)",
                                                    "var = groups.var(dim=2, unbiased=False, keepdim=True).detach()")), GN),
    # written for feature maps only
    "gn_assumes_4d": ("group_norm", _edit(GROUP_NORM, ("n, c = x.shape[:2]", "n, c, h, w = x.shape"),
                                          ("shape = [1, c] + [1] * (x.dim() - 2)", "shape = (1, c, 1, 1)")), GN_SHAPES),
    # view instead of reshape: fails on a non-contiguous x
    "gn_view_of_non_contiguous_input": ("group_norm", _edit(GROUP_NORM, ("groups = x.reshape(n, num_groups, -1)",
                                                                         "groups = x.view(n, num_groups, -1)")), GN_SHAPES),
    # no check: the reshape happily makes groups of unequal channels (or fails with another error)
    "gn_no_value_error": ("group_norm", _edit(GROUP_NORM, ('''    if c % num_groups != 0:
        raise ValueError(f"the {c} channels of x cannot be split into {num_groups} groups of equal size")
''', "")), GN_SHAPES),
    "gn_error_message_without_numbers": ("group_norm", _edit(GROUP_NORM, (
        'raise ValueError(f"the {c} channels of x cannot be split into {num_groups} groups of equal size")',
        'raise ValueError("the number of channels must be divisible by the number of groups")')), GN_SHAPES),
    "gn_calls_F_group_norm": ("group_norm", '''def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    if x.shape[1] % num_groups != 0:
        raise ValueError(f"{x.shape[1]} channels, {num_groups} groups")
    return F.group_norm(x, num_groups, weight, bias, eps)
''', GN | GN_SHAPES),
    "gn_uses_nn_GroupNorm": ("group_norm", '''def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    if x.shape[1] % num_groups != 0:
        raise ValueError(f"{x.shape[1]} channels, {num_groups} groups")
    layer = nn.GroupNorm(num_groups, x.shape[1], eps=eps, affine=False)
    y = layer(x)
    shape = [1, -1] + [1] * (x.dim() - 2)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y
''', GN | GN_SHAPES),
})

# --------------------------------------------------------------------------- BatchNorm2d
LAYER_CLASS = '''class BatchNorm2d(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError(f"BatchNorm2d expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
        if self.training:
            self.num_batches_tracked.add_(1)
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                          training=self.training, momentum=self.momentum, eps=self.eps)
'''
COUNT = '''        if self.training:
            self.num_batches_tracked.add_(1)
'''
MISTAKES.update({
    "bn2d_no_num_batches_tracked": ("BatchNorm2d", _edit(LAYER_CLASS, (
        '        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))\n', ""), (COUNT, "")),
        LAYER | LAYER_MODES),
    "bn2d_num_batches_tracked_not_incremented": ("BatchNorm2d", _edit(LAYER_CLASS, (COUNT, "")), LAYER_MODES),
    "bn2d_counts_evaluation_steps_too": ("BatchNorm2d", _edit(LAYER_CLASS, (COUNT, "        self.num_batches_tracked.add_(1)\n")),
                                         LAYER_MODES),
    # a plain int attribute: not a buffer, so not in the state_dict
    "bn2d_num_batches_tracked_plain_int": ("BatchNorm2d", _edit(LAYER_CLASS, (
        '        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))\n',
        "        self.num_batches_tracked = 0\n"), ("self.num_batches_tracked.add_(1)", "self.num_batches_tracked += 1")),
        LAYER | LAYER_MODES),
    # evaluation mode forgotten: always the batch statistics
    "bn2d_always_training_mode": ("BatchNorm2d", _edit(LAYER_CLASS, ("training=self.training,", "training=True,")), LAYER_MODES),
    "bn2d_momentum_and_eps_not_passed": ("BatchNorm2d", _edit(LAYER_CLASS, ('''self.bias,
                          training=self.training, momentum=self.momentum, eps=self.eps)''', '''self.bias,
                          training=self.training)''')), LAYER_MODES),
    # the running statistics as (frozen) parameters instead of buffers
    "bn2d_running_stats_as_parameters": ("BatchNorm2d", _edit(LAYER_CLASS, (
        '''        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))''',
        '''        self.running_mean = nn.Parameter(torch.zeros(num_features), requires_grad=False)
        self.running_var = nn.Parameter(torch.ones(num_features), requires_grad=False)''')), LAYER | LAYER_MODES),
    # weight and bias as plain tensors: not learned, not in the state_dict
    "bn2d_weight_bias_not_parameters": ("BatchNorm2d", _edit(LAYER_CLASS, (
        '''        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))''',
        '''        self.weight = torch.ones(num_features)
        self.bias = torch.zeros(num_features)''')), LAYER | LAYER_MODES),
    "bn2d_running_var_starts_at_zero": ("BatchNorm2d", _edit(LAYER_CLASS, ('torch.ones(num_features))\n        self.register_buffer("num',
                                                                     'torch.zeros(num_features))\n        self.register_buffer("num')
                                                                    ), LAYER | LAYER_MODES),
    "bn2d_no_shape_check": ("BatchNorm2d", _edit(LAYER_CLASS, ('''        if x.dim() != 4:
            raise ValueError(f"BatchNorm2d expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
''', "")), LAYER),
    "bn2d_error_message_without_shape": ("BatchNorm2d", _edit(LAYER_CLASS, (
        'raise ValueError(f"BatchNorm2d expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")',
        'raise ValueError("BatchNorm2d expects a 4-D input (N, C, H, W)")')), LAYER),
    "bn2d_subclasses_nn_BatchNorm2d": ("BatchNorm2d", '''class BatchNorm2d(nn.BatchNorm2d):
    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError(f"expected a 4-D input, got shape {tuple(x.shape)}")
        return super().forward(x)
''', LAYER | LAYER_MODES),
    "bn2d_calls_F_batch_norm": ("BatchNorm2d", _edit(LAYER_CLASS, ('''        return batch_norm(x, self.running_mean''',
                                                            '''        return F.batch_norm(x, self.running_mean''')),
                                LAYER | LAYER_MODES),
})

# One submission with one typical mistake in EVERY answer cell (graded through nbgrader), chosen so
# that they do not interact: each loses exactly its own cells' points.
COMBINED = {
    "batch_norm": MISTAKES["bn_running_var_biased"][1],                       # -2 (test_batch_norm_running_stats)
    "layer_norm": MISTAKES["ln_bias_only_with_weight"][1],                    # -1 (test_layer_norm_affine)
    "group_norm": MISTAKES["gn_no_value_error"][1],                           # -1 (test_group_norm_shapes_errors)
    "BatchNorm2d": MISTAKES["bn2d_num_batches_tracked_not_incremented"][1],   # -2 (test_BatchNorm2d_modes)
}
COMBINED_EXPECTED_SCORE = 9.0  # of 15

# The mistakes that use a routine the lab's POLICY forbids: exactly these are flagged by the
# grader's reading of the source (grading/static.py).
FORBIDDEN = {
    "bn_calls_F_batch_norm",
    "ln_calls_F_layer_norm",
    "ln_calls_torch_native_layer_norm",
    "gn_calls_F_group_norm",
    "gn_uses_nn_GroupNorm",
    "bn2d_subclasses_nn_BatchNorm2d",
    "bn2d_calls_F_batch_norm",
}
