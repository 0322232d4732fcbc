"""L-BFGS on K independent problems at once, each exactly as ``torch.optim.LBFGS`` would run it alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class BatchedLBFGS(torch.optim.Optimizer):
    """PyTorch's L-BFGS (no line search: step lr, the first step scaled by min(1, 1/‖g‖₁)) vectorised
    over a leading problem dimension K.

    Every parameter has shape (K, ...). The closure returns the K losses (K,) after calling backward
    on their sum, so each problem's gradient is its own. Each problem keeps its own curvature
    history, step length, iteration count and stopping tests: a problem's trajectory does not depend
    on the other problems of the batch. ``step`` returns the losses at the start of the step.
    """

    def __init__(
        self,
        params,
        lr: float = 1.0,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
    ) -> None:
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval or max_iter * 5 // 4,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
        )
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("BatchedLBFGS takes one parameter group")
        self._params: list[Tensor] = self.param_groups[0]["params"]
        self._problems = self._params[0].shape[0]

    def _flat_grad(self) -> Tensor:
        return torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(self._problems, -1) for p in self._params],
            dim=1,
        )

    def _move(self, step: Tensor, direction: Tensor) -> None:
        offset = 0
        for p in self._params:
            size = p[0].numel()
            p.add_((step[:, None] * direction[:, offset : offset + size]).view_as(p))
            offset += size

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """PyTorch casts a loaded state to the parameters' dtype; the history masks and counters are
        restored as booleans and integers, and each pair's 1/(yᵀs) is 0 where its mask is off."""
        super().load_state_dict(state_dict)
        state = self.state[self._params[0]]
        if "valid" in state:
            state["valid"] = [mask.bool() for mask in state["valid"]]
            state["ro"] = [ro * mask for ro, mask in zip(state["ro"], state["valid"])]
        if "n_iter" in state:
            state["n_iter"] = state["n_iter"].long()

    @staticmethod
    def _drop_empty(state: dict[str, Any], slots: Any) -> None:
        """Remove the history pairs among ``slots`` that no problem holds any more."""
        for i in sorted({i for i in slots if not bool(state["valid"][i].any())}, reverse=True):
            for key in ("dirs", "steps", "ro", "valid"):
                del state[key][i]

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change, history = group["tolerance_grad"], group["tolerance_change"], group["history_size"]
        state = self.state[self._params[0]]
        k = self._problems

        orig_loss = closure()
        loss = orig_loss.detach().clone()
        flat_grad = self._flat_grad()
        active = flat_grad.abs().amax(dim=1) > tol_grad
        state.setdefault("n_iter", torch.zeros(k, dtype=torch.long, device=loss.device))
        if "d" not in state:
            state.update(
                d=-flat_grad,
                t=torch.full_like(loss, lr),
                H_diag=torch.ones_like(loss),
                prev_flat_grad=flat_grad.clone(),
                prev_loss=loss.clone(),
                dirs=[],
                steps=[],
                ro=[],
                valid=[],
            )
        d, t, h_diag = state["d"], state["t"], state["H_diag"]
        prev_flat_grad, prev_loss = state["prev_flat_grad"], state["prev_loss"]
        dirs, steps, ro, valid = state["dirs"], state["steps"], state["ro"], state["valid"]

        n_iter, evals = 0, 1
        while n_iter < max_iter and bool(active.any()):
            n_iter += 1
            state["n_iter"] += active
            first = active & (state["n_iter"] == 1)
            if bool(first.any()):  # a first iteration starts an empty history
                for i in range(len(valid)):
                    valid[i] &= ~first
                    ro[i] = ro[i] * valid[i]
                self._drop_empty(state, range(len(valid)))
            y = flat_grad - prev_flat_grad
            s = d * t[:, None]
            ys = (y * s).sum(dim=1)
            accept = active & ~first & (ys > 1e-10)
            if bool(accept.any()):
                emptied = []
                if valid:
                    held = torch.stack(valid)  # (slots, K)
                    full = accept & (held.sum(dim=0) >= history)
                    if bool(full.any()):
                        oldest = held.int().argmax(dim=0)
                        for problem in full.nonzero().flatten().tolist():
                            slot = int(oldest[problem])
                            valid[slot][problem] = False
                            ro[slot][problem] = 0.0
                            emptied.append(slot)
                dirs.append(y)
                steps.append(s)
                ro.append(torch.where(accept, 1.0 / torch.where(accept, ys, torch.ones_like(ys)), torch.zeros_like(ys)))
                valid.append(accept.clone())
                h_diag = torch.where(accept, ys / (y * y).sum(dim=1).clamp_min(1e-30), h_diag)
                self._drop_empty(state, emptied)
            h_diag = torch.where(first, torch.ones_like(h_diag), h_diag)

            # two-loop recursion, each problem over its own valid history (ro is 0 where a pair is not)
            q = flat_grad.neg()
            alphas = []
            for i in reversed(range(len(valid))):
                alpha = ro[i] * torch.linalg.vecdot(steps[i], q)
                q.addcmul_(alpha[:, None], dirs[i], value=-1)
                alphas.append(alpha)
            r = q.mul_(h_diag[:, None])
            for i, alpha in zip(range(len(valid)), reversed(alphas)):
                beta = ro[i] * torch.linalg.vecdot(dirs[i], r)
                r.addcmul_((alpha - beta)[:, None], steps[i])
            d = torch.where(active[:, None], torch.where(first[:, None], -flat_grad, r), d)

            prev_flat_grad = torch.where(active[:, None], flat_grad, prev_flat_grad)
            prev_loss = torch.where(active, loss, prev_loss)
            first_step = torch.clamp(1.0 / flat_grad.abs().sum(dim=1), max=1.0) * lr
            t = torch.where(active, torch.where(state["n_iter"] == 1, first_step, torch.full_like(t, lr)), t)
            active = active & ((flat_grad * d).sum(dim=1) <= -tol_change)

            self._move(torch.where(active, t, torch.zeros_like(t)), d)
            if n_iter != max_iter:
                new_loss = closure().detach()
                new_grad = self._flat_grad()
                loss = torch.where(active, new_loss, loss)
                flat_grad = torch.where(active[:, None], new_grad, flat_grad)
                evals += 1
            if n_iter == max_iter or evals >= max_eval:
                break
            active = active & (flat_grad.abs().amax(dim=1) > tol_grad)
            active = active & ((d * t[:, None]).abs().amax(dim=1) > tol_change)
            active = active & ((loss - prev_loss).abs() >= tol_change)

        state.update(d=d, t=t, H_diag=h_diag, prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss
