"""PyTorch adapter (optional: ``pip install flatminima[torch]``).

Wraps a model's loss as an object with a NumPy ``value_and_grad(x)`` over the flattened
parameters, the form every flatminima function accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class TorchObjective:
    """``x -> loss_fn(model with parameters x, *batch)`` with its gradient, in NumPy.

    Args:
        model: a ``torch.nn.Module``; its parameters are read once for :meth:`point` and
            overwritten at each evaluation (the model is used as the evaluation buffer).
        loss_fn: ``loss_fn(model, *batch)`` returning a scalar tensor.
        batch: the fixed data the loss is evaluated on.

    Use ``model.double()`` for float64 accuracy; values and gradients are returned as
    float64 NumPy values either way.
    """

    def __init__(self, model: Any, loss_fn: Callable, *batch: Any):
        try:
            import torch
        except ImportError as err:  # pragma: no cover - exercised only without torch
            raise ImportError("TorchObjective needs PyTorch: pip install flatminima[torch]") from err
        self._torch = torch
        self.model, self.loss_fn, self.batch = model, loss_fn, batch
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model has no trainable parameters.")
        self.n = sum(p.numel() for p in self.params)

    def point(self) -> np.ndarray:
        """The model's current parameters, flattened (float64)."""
        return self._torch.nn.utils.parameters_to_vector(self.params).detach().cpu().double().numpy()

    def value_and_grad(self, x: Any) -> tuple[float, np.ndarray]:
        torch = self._torch
        x = np.array(x, dtype=float).reshape(-1)  # a writable copy for torch
        if x.size != self.n:
            raise ValueError(f"x has {x.size} entries but the model has {self.n} parameters.")
        vec = torch.as_tensor(x, dtype=self.params[0].dtype, device=self.params[0].device)
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(vec, self.params)
        for p in self.params:
            p.grad = None
        loss = self.loss_fn(self.model, *self.batch)
        if loss.numel() != 1:
            raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}.")
        loss.backward()
        grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                          for p in self.params])
        return float(loss.detach()), grad.detach().cpu().double().numpy()
