"""Typical mistakes for lab2-adamw: each must fail exactly the listed test cells.

Each entry: short name -> (answer grade_id, full replacement source of that answer cell as a
student would write it, set of test grade_ids that must FAIL).

Most replacements are one realistic change to a correct student-style solution (ADAM, ADAMW,
CLASS below: textbook formulas written another way than PyTorch's, which pass every test), so
each entry isolates one mistake.

Propagation. The reference adamw_step calls adam_step (decay, then adam_step with
weight_decay=0), so a mistake in adam_step's weight_decay=0 path also fails both adamw_step
cells (ADAM_CORE); mistakes in its L2 branch only fail test_adam_step_weight_decay. The class
cells run the class with a reference adamw_step in their hidden part, so a mistake in
adamw_step (or adam_step) reaches them only through the visible checks of test_AdamW (e.g. no
state in self.state[p]); a function that uses PyTorch's Adam or AdamW fails the visible checks of
both class cells, which run the class inside the lab's rule (RULE.guard). The tests compare with
PyTorch at rounding level in float64, so even eps misplaced with the default eps=1e-8 is caught
in every cell (entries with small gradients make it visible), not only in the eps-specific
hyperparameter checks.

Which cell checks what:
* test_adam_step / test_adamw_step: 30-50 steps against torch.optim.Adam(W) (default and other lr,
  6 shapes, float32 and float64), state contents, in-place update, grad untouched;
* test_adam_step_weight_decay: the L2 term (weight_decay > 0) of Adam;
* test_adam_step_hyperparams: betas (including 0), lr, eps where it matters (eps ~ sqrt(v_hat)),
  gradients that are exactly zero (m = v = 0);
* test_adamw_step_decay: large lr * weight_decay (order of decay and update, lr in the decay),
  zero gradients (pure decay);
* test_AdamW: param groups, grad None, lr changed between steps, defaults, state in self.state[p];
* test_AdamW_api: ValueError validation, closure, step() return value, state_dict round trip,
  zero_grad.
"""
# --------------------------------------------------------------------------- test-cell groups
A_BASIC = {"test_adam_step"}
A_WD = {"test_adam_step_weight_decay"}
A_HYPER = {"test_adam_step_hyperparams"}
A_ALL = A_BASIC | A_WD | A_HYPER
W_BASIC = {"test_adamw_step"}
W_DECAY = {"test_adamw_step_decay"}
W_ALL = W_BASIC | W_DECAY
C_MAIN = {"test_AdamW"}
C_API = {"test_AdamW_api"}
C_ALL = C_MAIN | C_API
# adam_step is called by the reference adamw_step: a mistake in its weight_decay=0 path fails both
ADAM_CORE = {"test_adam_step", "test_adam_step_weight_decay", "test_adam_step_hyperparams",
             "test_adamw_step", "test_adamw_step_decay"}


def variant(base: str, *changes: tuple[str, str]) -> str:
    """`base` with each (old, new) replacement applied; old must occur exactly once."""
    for old, new in changes:
        if base.count(old) != 1:
            raise ValueError(f"{old!r} occurs {base.count(old)} times in the base solution")
        base = base.replace(old, new)
    return base


# --------------------------------------------------------------------------- adam_step
ADAM = '''def adam_step(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    beta1, beta2 = betas
    if len(state) == 0:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
    state["step"] += 1
    t = state["step"]
    if weight_decay != 0:
        grad = grad + weight_decay * param
    m = state["exp_avg"]
    v = state["exp_avg_sq"]
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    param.sub_(lr * m_hat / (v_hat.sqrt() + eps))
'''
UPDATE = "    param.sub_(lr * m_hat / (v_hat.sqrt() + eps))\n"

MISTAKES = {
    "adam_no_bias_correction": ("adam_step", variant(
        ADAM, ("m_hat = m / (1 - beta1 ** t)", "m_hat = m"), ("v_hat = v / (1 - beta2 ** t)", "v_hat = v")),
        ADAM_CORE),
    "adam_bias_correction_first_moment_only": ("adam_step", variant(
        ADAM, ("v_hat = v / (1 - beta2 ** t)", "v_hat = v")), ADAM_CORE),
    "adam_bias_correction_second_moment_only": ("adam_step", variant(
        ADAM, ("m_hat = m / (1 - beta1 ** t)", "m_hat = m")), ADAM_CORE),
    # sqrt(v) / (1 - beta2**t) + eps: the second correction without its square root
    "adam_second_correction_not_square_rooted": ("adam_step", variant(
        ADAM, ("    v_hat = v / (1 - beta2 ** t)\n", ""),
        (UPDATE, "    param.sub_(lr * m_hat / (v.sqrt() / (1 - beta2 ** t) + eps))\n")), ADAM_CORE),
    # the counter is incremented after use: t = 0 on the first call, 1 - beta**0 = 0, division by zero
    "adam_step_counted_from_zero": ("adam_step", variant(
        ADAM, ('    state["step"] += 1\n    t = state["step"]\n', '    t = state["step"]\n'),
        (UPDATE, UPDATE + '    state["step"] += 1\n')), ADAM_CORE),
    "adam_step_never_incremented": ("adam_step", variant(
        ADAM, ('state["step"] = 0', 'state["step"] = 1'), ('    state["step"] += 1\n', "")), ADAM_CORE),
    "adam_eps_inside_sqrt": ("adam_step", variant(
        ADAM, (UPDATE, "    param.sub_(lr * m_hat / (v_hat + eps).sqrt())\n")), ADAM_CORE),
    # the "efficient version" of the Adam paper: eps added to sqrt(v) before the bias correction
    "adam_eps_before_bias_correction": ("adam_step", variant(
        ADAM, (UPDATE, "    param.sub_(lr * m_hat / ((v.sqrt() + eps) / math.sqrt(1 - beta2 ** t)))\n")), ADAM_CORE),
    "adam_no_eps": ("adam_step", variant(ADAM, (UPDATE, "    param.sub_(lr * m_hat / v_hat.sqrt())\n")), ADAM_CORE),
    "adam_betas_swapped": ("adam_step", variant(ADAM, ("beta1, beta2 = betas", "beta2, beta1 = betas")), ADAM_CORE),
    "adam_beta1_for_second_moment": ("adam_step", variant(
        ADAM, ("v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)", "v.mul_(beta1).addcmul_(grad, grad, value=1 - beta1)")),
        ADAM_CORE),
    # v averages g instead of g**2: sqrt of a negative number, NaN
    "adam_gradient_not_squared": ("adam_step", variant(
        ADAM, ("v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)", "v.mul_(beta2).add_(grad, alpha=1 - beta2)")),
        ADAM_CORE),
    "adam_abs_instead_of_square": ("adam_step", variant(
        ADAM, ("v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)", "v.mul_(beta2).add_(grad.abs(), alpha=1 - beta2)")),
        ADAM_CORE),
    # SGD-momentum style first moment: m = beta1 * m + g
    "adam_momentum_not_averaged": ("adam_step", variant(
        ADAM, ("m.mul_(beta1).add_(grad, alpha=1 - beta1)", "m.mul_(beta1).add_(grad)")), ADAM_CORE),
    # RMSprop with bias correction: the update uses the raw gradient, not m_hat
    "adam_update_uses_gradient": ("adam_step", variant(
        ADAM, (UPDATE, "    param.sub_(lr * grad / (v_hat.sqrt() + eps))\n")), ADAM_CORE),
    "adam_ascends": ("adam_step", variant(ADAM, (UPDATE, UPDATE.replace("sub_", "add_"))), ADAM_CORE),
    # no initialization: expects the caller to fill state (KeyError on the first call)
    "adam_state_not_initialized": ("adam_step", variant(
        ADAM, ('''    if len(state) == 0:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
''', "")), ADAM_CORE | C_ALL),  # crashes: the visible checks of the class crash too
    "adam_state_reset_every_call": ("adam_step", variant(
        ADAM, ("    if len(state) == 0:\n", "    if True:\n")), ADAM_CORE),
    # `state = {...}` rebinds the local name: the caller's dict stays empty
    "adam_state_rebound_locally": ("adam_step", variant(
        ADAM, ('''    if len(state) == 0:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
''', '''    if len(state) == 0:
        state = {"step": 0, "exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}
''')), ADAM_CORE | C_MAIN),  # the class's visible check finds no state either
    # torch.zeros(shape) is float32: a float64 parameter gets float32 moments
    "adam_state_float32": ("adam_step", variant(
        ADAM, ('state["exp_avg"] = torch.zeros_like(param)', 'state["exp_avg"] = torch.zeros(param.shape)'),
        ('state["exp_avg_sq"] = torch.zeros_like(param)', 'state["exp_avg_sq"] = torch.zeros(param.shape)')),
        ADAM_CORE),
    "adam_returns_new_tensor": ("adam_step", variant(
        ADAM, (UPDATE, "    return param - lr * m_hat / (v_hat.sqrt() + eps)\n")), ADAM_CORE),
    "adam_rebinds_param": ("adam_step", variant(
        ADAM, (UPDATE, "    param = param - lr * m_hat / (v_hat.sqrt() + eps)\n")), ADAM_CORE),
    "adam_grad_modified_in_place": ("adam_step", variant(
        ADAM, ("grad = grad + weight_decay * param", "grad.add_(param, alpha=weight_decay)")), A_WD),
    "adam_weight_decay_ignored": ("adam_step", variant(
        ADAM, ("    if weight_decay != 0:\n        grad = grad + weight_decay * param\n", "")), A_WD),
    # AdamW's decoupled decay in adam_step
    "adam_weight_decay_decoupled": ("adam_step", variant(
        ADAM, ("grad = grad + weight_decay * param", "param.mul_(1 - lr * weight_decay)")), A_WD),
    # the L2 term added to the update, outside the moments (decoupled again)
    "adam_weight_decay_outside_moments": ("adam_step", variant(
        ADAM, ("    if weight_decay != 0:\n        grad = grad + weight_decay * param\n", ""),
        (UPDATE, "    param.sub_(lr * (m_hat / (v_hat.sqrt() + eps) + weight_decay * param))\n")), A_WD),
    "adam_calls_torch_adam": ("adam_step", '''def adam_step(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    if "optimizer" not in state:
        state["p"] = torch.nn.Parameter(param)  # shares param's storage
        state["optimizer"] = torch.optim.Adam([state["p"]], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    state["p"].grad = grad.clone()
    state["optimizer"].step()
    s = state["optimizer"].state[state["p"]]
    state["step"], state["exp_avg"], state["exp_avg_sq"] = s["step"], s["exp_avg"], s["exp_avg_sq"]
''', ADAM_CORE | C_ALL),  # forbidden: also in the class's visible checks (they run the reference adamw_step on it)
}

# --------------------------------------------------------------------------- adamw_step
ADAMW = '''def adamw_step(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    beta1, beta2 = betas
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
    state["step"] += 1
    t = state["step"]
    param.mul_(1 - lr * weight_decay)
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.mul_(beta1).add_((1 - beta1) * grad)
    v.mul_(beta2).add_((1 - beta2) * grad * grad)
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    param -= lr * m_hat / (torch.sqrt(v_hat) + eps)
'''
DECAY = "    param.mul_(1 - lr * weight_decay)\n"
W_UPDATE = "    param -= lr * m_hat / (torch.sqrt(v_hat) + eps)\n"
REUSE_SIG = "def adamw_step(param, grad, state, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):\n"

MISTAKES.update({
    # Adam + L2, the mistake AdamW is about
    "adamw_coupled_decay": ("adamw_step", REUSE_SIG + '''    adam_step(param, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
''', W_ALL),
    "adamw_coupled_decay_inline": ("adamw_step", variant(
        ADAMW, (DECAY, ""), ("    m, v =", "    grad = grad + weight_decay * param\n    m, v =")), W_ALL),
    # reuses adam_step but also passes weight_decay on: decoupled decay AND L2
    "adamw_decay_twice": ("adamw_step", REUSE_SIG + '''    param.mul_(1 - lr * weight_decay)
    adam_step(param, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
''', W_ALL),
    "adamw_decay_without_lr": ("adamw_step", variant(ADAMW, (DECAY, "    param.mul_(1 - weight_decay)\n")), W_ALL),
    "adamw_decay_after_update": ("adamw_step", variant(ADAMW, (DECAY, ""), (W_UPDATE, W_UPDATE + DECAY)), W_ALL),
    "adamw_decay_after_update_reusing_adam": ("adamw_step", REUSE_SIG + '''    adam_step(param, grad, state, lr=lr, betas=betas, eps=eps)
    param.mul_(1 - lr * weight_decay)
''', W_ALL),
    # the decay uses the bias-corrected step size lr / (1 - beta1**t)
    "adamw_decay_with_corrected_lr": ("adamw_step", variant(
        ADAMW, (DECAY, ""), ("    m_hat = m / (1 - beta1 ** t)\n",
                             "    m_hat = m / (1 - beta1 ** t)\n    param.mul_(1 - lr / (1 - beta1 ** t) * weight_decay)\n")),
        W_ALL),
    "adamw_decay_subtracts_constant": ("adamw_step", variant(ADAMW, (DECAY, "    param.sub_(lr * weight_decay)\n")), W_ALL),
    "adamw_no_decay": ("adamw_step", REUSE_SIG + "    adam_step(param, grad, state, lr=lr, betas=betas, eps=eps)\n", W_ALL),
    "adamw_no_bias_correction": ("adamw_step", variant(
        ADAMW, ("m_hat = m / (1 - beta1 ** t)", "m_hat = m"), ("v_hat = v / (1 - beta2 ** t)", "v_hat = v")), W_ALL),
    "adamw_eps_inside_sqrt": ("adamw_step", variant(
        ADAMW, (W_UPDATE, "    param -= lr * m_hat / torch.sqrt(v_hat + eps)\n")), W_ALL),
    "adamw_rebinds_param": ("adamw_step", variant(
        ADAMW, (W_UPDATE, "    param = param - lr * m_hat / (torch.sqrt(v_hat) + eps)\n")), W_ALL),
    # the first moment scales grad in place (grad.mul_), so grad changes and v sees the scaled one
    "adamw_grad_scaled_in_place": ("adamw_step", variant(
        ADAMW, ("m.mul_(beta1).add_((1 - beta1) * grad)", "m.mul_(beta1).add_(grad.mul_(1 - beta1))")), W_ALL),
    "adamw_calls_torch_adamw": ("adamw_step", REUSE_SIG + '''    if "optimizer" not in state:
        state["p"] = torch.nn.Parameter(param)
        state["optimizer"] = torch.optim.AdamW([state["p"]], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    state["p"].grad = grad
    state["optimizer"].step()
    state.update({k: v for k, v in state["optimizer"].state[state["p"]].items()})
''', W_ALL | C_ALL),  # forbidden: also in the class's visible checks (they run it)
})

# --------------------------------------------------------------------------- AdamW class
CLASS = '''class AdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        if lr < 0:
            raise ValueError("lr must be >= 0")
        if eps < 0:
            raise ValueError("eps must be >= 0")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError("betas must be in [0, 1)")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                adamw_step(p, p.grad, self.state[p], lr=group["lr"], betas=group["betas"],
                           eps=group["eps"], weight_decay=group["weight_decay"])
        return loss
'''
CALL = '''                adamw_step(p, p.grad, self.state[p], lr=group["lr"], betas=group["betas"],
                           eps=group["eps"], weight_decay=group["weight_decay"])
'''
VALIDATION = '''        if lr < 0:
            raise ValueError("lr must be >= 0")
        if eps < 0:
            raise ValueError("eps must be >= 0")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError("betas must be in [0, 1)")
'''
SKIP = "                if p.grad is None:\n                    continue\n"

MISTAKES.update({
    "class_ignores_group_hyperparameters": ("AdamW", variant(CLASS, (CALL, '''                d = self.defaults
                adamw_step(p, p.grad, self.state[p], lr=d["lr"], betas=d["betas"], eps=d["eps"],
                           weight_decay=d["weight_decay"])
''')), C_MAIN),
    # hyperparameters kept as attributes in __init__: groups and schedulers are ignored
    "class_hyperparameters_cached_in_init": ("AdamW", variant(
        CLASS, ("        super().__init__(", "        self.lr, self.weight_decay = lr, weight_decay\n        super().__init__("),
        ('lr=group["lr"]', "lr=self.lr"), ('weight_decay=group["weight_decay"]', "weight_decay=self.weight_decay")),
        C_MAIN),
    "class_first_group_only": ("AdamW", variant(
        CLASS, ('''        for group in self.param_groups:
            for p in group["params"]:''', '''        group = self.param_groups[0]
        if True:
            for p in group["params"]:''')), C_MAIN),
    "class_grad_none_not_skipped": ("AdamW", variant(CLASS, (SKIP, "")), C_MAIN),
    # a missing gradient treated as zero: the parameter is still decayed and its state advances
    "class_grad_none_as_zero": ("AdamW", variant(CLASS, (SKIP, ""), (CALL, CALL.replace(
        "adamw_step(p, p.grad,", "adamw_step(p, p.grad if p.grad is not None else torch.zeros_like(p),"))), C_MAIN),
    "class_fresh_state_every_step": ("AdamW", variant(CLASS, (CALL, CALL.replace("self.state[p]", "{}"))), C_ALL),
    # state kept in a dict of its own: state_dict() does not save it, opt.state[p] stays empty
    "class_private_state_dict": ("AdamW", variant(
        CLASS, ("        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))\n",
                "        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))\n"
                "        self.my_state = {}\n"),
        (CALL, CALL.replace("self.state[p]", "self.my_state.setdefault(p, {})"))), C_ALL),
    # without torch.no_grad the in-place update of a leaf that requires grad raises
    "class_no_torch_no_grad": ("AdamW", variant(CLASS, ("    @torch.no_grad()\n", "")), C_ALL),
    "class_no_validation": ("AdamW", variant(CLASS, (VALIDATION, "")), C_API),
    "class_validation_rejects_zero": ("AdamW", variant(CLASS, (VALIDATION, '''        if lr <= 0:
            raise ValueError("lr must be > 0")
        if eps <= 0:
            raise ValueError("eps must be > 0")
        if not (0 < betas[0] < 1 and 0 < betas[1] < 1):
            raise ValueError("betas must be in (0, 1)")
''')), C_API),
    "class_validation_allows_beta_one": ("AdamW", variant(
        CLASS, ("0 <= betas[0] < 1 and 0 <= betas[1] < 1", "0 <= betas[0] <= 1 and 0 <= betas[1] <= 1")), C_API),
    # the closure runs under the decorator's no_grad: backward() fails
    "class_closure_without_enable_grad": ("AdamW", variant(
        CLASS, ("            with torch.enable_grad():\n                loss = closure()\n", "            loss = closure()\n")),
        C_API),
    "class_loss_not_returned": ("AdamW", variant(CLASS, ("        return loss\n", "")), C_API),
    "class_closure_called_after_update": ("AdamW", variant(
        CLASS, ("        loss = None\n        if closure is not None:\n            with torch.enable_grad():\n"
                "                loss = closure()\n", "        loss = None\n"),
        ("        return loss\n", "        if closure is not None:\n            with torch.enable_grad():\n"
                                 "                loss = closure()\n        return loss\n")), C_API),
    "class_subclasses_torch_adamw": ("AdamW", '''class AdamW(torch.optim.AdamW):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
''', C_ALL),
})

# One submission with one typical mistake in EVERY answer cell (graded through nbgrader), chosen so
# that they do not interact: each loses exactly its own cells' points.
COMBINED = {
    "adam_step": MISTAKES["adam_weight_decay_ignored"][1],   # -1 (test_adam_step_weight_decay)
    "adamw_step": MISTAKES["adamw_decay_after_update"][1],   # -4 (test_adamw_step, test_adamw_step_decay)
    "AdamW": MISTAKES["class_no_validation"][1],             # -2 (test_AdamW_api)
}
COMBINED_EXPECTED_SCORE = 5.0  # of 12


# The mistakes that use a routine the lab's POLICY forbids: exactly these are flagged by the
# grader's reading of the source (grading/static.py).
FORBIDDEN = {
    "adam_calls_torch_adam",
    "adamw_calls_torch_adamw",
    "class_subclasses_torch_adamw",
}
