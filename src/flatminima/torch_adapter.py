"""PyTorch adapter (optional: ``pip install flatminima[torch]``).

Wraps a model's loss as an object with NumPy ``value_and_grad(x)`` and ``hvp(x, v)``
over the flattened trainable parameters, the form every flatminima function accepts.
Evaluation goes through ``torch.func.functional_call``, so the model itself is never
written to. The loss is taken on one fixed batch or averaged over a data loader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np

from ._torch_batches import Loader, check_tensors
from ._warn import warn


class TorchObjective:
    """``f(x) = loss_fn(model with trainable parameters x, *batch)``, or over a data loader
    ``f(x) = (1/N) sum_b n_b loss_fn(m, *batch_b)``, ``N = sum_b n_b``, with its exact
    gradient and Hessian-vector products, in NumPy float64.

    ``x`` is the concatenation of ``p.reshape(-1)`` over ``model.named_parameters()``
    with ``requires_grad`` (the order of ``torch.nn.utils.parameters_to_vector``), an
    array of ``n`` entries. Gradients are ``torch.func.grad``; ``hvp(x, v) = H(x) v`` is
    the double backward ``vjp(grad f)(v)`` (exact: ``H`` is symmetric).

    Args:
        model: a ``torch.nn.Module``. Never modified: parameters are replaced only inside
            ``functional_call``, buffers (BatchNorm running statistics, ...) are copied at
            construction and the copies are passed explicitly, and the train/eval flags
            are restored after each evaluation.
        loss_fn: ``loss_fn(m, *batch)`` returning a scalar tensor, where ``m`` stands for
            the model with parameters ``x``: call it (``m(X)``); ``m.parameters()`` and
            ``m.named_parameters()`` yield the parameters ``x`` (for weight decay). With
            ``data``, it must return the MEAN over its batch, as PyTorch losses do.
        batch: the fixed data the loss is evaluated on, on the model's device.
        data: keyword only, instead of ``batch``: a re-iterable of batches, each a tuple or
            list of tensors (or a single tensor) on the model's device: a
            ``torch.utils.data.DataLoader`` (over a dataset of tensors on that device; the
            order may be shuffled) or a list of ``(X, y)`` tuples. ``n_b`` is the leading
            size of the batch's first tensor. Every evaluation reads the data again, one
            batch at a time: working memory of one batch. A first pass at construction
            reads every batch once to check it, count the examples and evaluate the loss
            on it (one forward pass over the data).
        train: ``False`` (default) evaluates the model in eval mode (running statistics,
            no dropout): a deterministic function of ``x``. ``True`` evaluates in train
            mode, so BatchNorm normalizes with the statistics of each batch (the running
            statistics are not updated); refused for models with active dropout, whose
            train-mode loss is random, and for a shuffled ``data`` loader with
            normalization layers, whose batches (hence statistics) change at each pass.

    Attributes:
        n: the number of trainable parameters; ``dtype`` and ``device``: the model's.
        num_batches, num_examples: ``B`` and ``N`` of ``data`` (with ``batch``: 1 and the
            leading size of its first tensor, ``None`` when it has none).

    Precision: the model computes in its own dtype (:attr:`dtype`). ``x`` is rounded to
    that dtype, so for a float32 model values carry relative rounding errors of order
    ``1e-7`` times the loss's condition number, and gradients and Hessian-vector products
    likewise; results are returned as float64. Use ``model.double()`` for float64 accuracy.
    Over ``data`` each batch's value, gradient and Hessian-vector product is accumulated,
    detached, on the model's device in float64 (in the model dtype on devices without
    float64): no transfer to the host per batch, and the sum adds no rounding beyond that
    of the float32 terms. A shuffled loader groups the examples differently at each pass,
    so two evaluations at the same ``x`` may differ by rounding (``1e-16`` relative in
    float64, ``1e-7`` in float32); the determinism check of the measures allows that
    (at most ``1e-6`` relative: in float16 or bfloat16 pass ``shuffle=False``).

    Example: for ``f(w, b) = mean((X w + b)^2)`` with rows of ``X`` all ones, ``f`` is
    ``(w_1 + w_2 + b)^2`` and the Hessian is 2 everywhere, over any batching of ``X``.

    >>> import torch
    >>> model = torch.nn.Linear(2, 1).double()
    >>> X, Y = torch.ones(4, 2, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)
    >>> mse = lambda m, X, Y: ((m(X) - Y) ** 2).mean()
    >>> obj = TorchObjective(model, mse, X, Y)
    >>> obj.hvp(obj.point(), np.array([1.0, 0.0, 0.0])).tolist()
    [2.0, 2.0, 2.0]
    >>> data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=3)
    >>> obj = TorchObjective(model, mse, data=data)
    >>> obj.num_batches, obj.num_examples, obj.hvp(obj.point(), np.array([0.0, 0.0, 1.0])).tolist()
    (2, 4, [2.0, 2.0, 2.0])

    Raises:
        TypeError: ``model`` is not a ``torch.nn.Module``; ``data`` is not a re-iterable
            of batches (a one-shot generator, a tensor, a tuple of tensors such as
            ``(X, Y)``, which is one batch) or is passed positionally.
        ValueError: the model has no trainable parameters, mixes dtypes or devices; a batch
            tensor holds NaN or infinite values or sits on another device (the error names
            the batch); ``data`` is empty, its batches differ from the first in number of
            tensors or in a tensor's dtype or number of axes, or a pass reads a different
            number of examples; ``loss_fn`` raises on a batch (it is evaluated on every
            batch at construction; the error names the batch, the original error and a
            dtype differing from the model's); the loss is
            not a 0-d tensor; ``train=True`` with dropout or with a shuffled loader; ``x``
            or ``v`` has not ``n`` entries.

    Reference: the ``torch.func`` API, https://pytorch.org/docs/stable/func.html.
    """

    def __init__(self, model: Any, loss_fn: Callable, *batch: Any, data: Any = None,
                 train: bool = False):
        try:
            import torch
        except ImportError as err:  # pragma: no cover - exercised only without torch
            raise ImportError("TorchObjective needs PyTorch: pip install flatminima[torch]") from err
        self._torch = torch
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        if len(batch) == 1 and isinstance(batch[0], torch.utils.data.DataLoader):
            raise TypeError("a data loader goes in as a keyword: TorchObjective(model, "
                            "loss_fn, data=loader); positional arguments are one batch.")
        if batch and data is not None:
            raise TypeError("pass either one batch positionally or data=loader, not both.")
        named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("the model has no trainable parameters; set requires_grad=True "
                             "on the parameters to measure.")
        dtypes = {p.dtype for _, p in named}
        devices = {p.device for _, p in named}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ValueError(f"the trainable parameters mix dtypes {sorted(map(str, dtypes))} or "
                             f"devices {sorted(map(str, devices))}; convert the model with "
                             f"model.to(dtype, device).")
        self.model, self.loss_fn, self.batch, self.train = model, loss_fn, batch, bool(train)
        self.dtype, self.device = dtypes.pop(), devices.pop()
        self._names = [k for k, _ in named]
        self._shapes = [p.shape for _, p in named]
        self._sizes = [p.numel() for _, p in named]
        self.n = sum(self._sizes)
        self._buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
        self._sum_dtype = _sum_dtype(torch, self.device, self.dtype)
        modes = _mode_dependent(torch, model)
        if self.train and modes["dropout"]:
            raise ValueError("train=True with dropout makes the loss random (a new mask at "
                             "each evaluation); use train=False (the default, eval mode) or "
                             "call model.eval().")
        if not self.train and model.training and (modes["dropout"] or modes["norm"]):
            hint = ("; pass train=True to normalize with the batch statistics"
                    if not modes["dropout"] else "")
            warn("the model is in train mode but TorchObjective evaluates it in eval "
                 f"mode (running statistics, no dropout){hint}.", UserWarning)
        self._loader: Loader | None = None
        check_loss = partial(self._check_loss, self._vector(self.point()))
        if data is None:
            check_tensors(torch, batch, self.device, "batch[{}]")
            check_loss(batch)
            head = batch[0] if batch else None
            self.num_batches = 1
            self.num_examples = (int(head.shape[0]) if isinstance(head, torch.Tensor)
                                 and head.ndim > 0 else None)
        else:
            self._loader = Loader(torch, data, self.device, check_loss)
            if self.train and modes["norm"] and self._loader.shuffled:
                raise ValueError("train=True normalizes with each batch's statistics, and a "
                                 "shuffled loader changes the batches at each pass; pass "
                                 "shuffle=False or use train=False.")
            self.num_batches = self._loader.num_batches
            self.num_examples = self._loader.num_examples
        self.data = data

    def point(self) -> np.ndarray:
        """The model's current trainable parameters, flattened (float64)."""
        params = dict(self.model.named_parameters())
        flat = self._torch.cat([params[k].detach().reshape(-1) for k in self._names])
        return flat.cpu().double().numpy()

    def value_and_grad(self, x: Any) -> tuple[float, np.ndarray]:
        """``(f(x), grad f(x))`` as a float and a float64 array of ``n`` entries."""
        flat = self._vector(x)
        grad_and_value = self._torch.func.grad_and_value

        def term(batch):
            grad, value = grad_and_value(partial(self._loss, batch=batch))(flat)
            return value, grad

        value, grad = self._average(term)
        return float(value.cpu()), self._numpy(grad)

    def hvp(self, x: Any, v: Any) -> np.ndarray:
        """The Hessian-vector product ``H(x) v``, exact (double backward), float64."""
        func = self._torch.func
        flat, tangent = self._vector(x), self._vector(v, name="v")

        def term(batch):
            _, pullback = func.vjp(func.grad(partial(self._loss, batch=batch)), flat)
            return pullback(tangent)

        return self._numpy(self._average(term)[0])

    def _average(self, term: Callable) -> list:
        """``sum_b (n_b / N) term(batch_b)`` for ``term`` returning a tuple of tensors,
        accumulated detached on the model's device in :attr:`_sum_dtype`."""
        batches = [(1.0, self.batch)] if self._loader is None else self._loader.weighted(self._torch)
        total: list = []
        for weight, batch in batches:
            parts = [t.detach().to(self._sum_dtype) for t in term(batch)]
            if total:
                for acc, part in zip(total, parts):
                    acc.add_(part, alpha=weight)
            else:
                total = [weight * part for part in parts]
        return total

    def _check_loss(self, flat: Any, batch: tuple, index: int | None = None) -> None:
        """The loss at the parameters ``flat`` on ``batch`` is a 0-d tensor; an error of
        ``loss_fn`` there becomes a one-line ``ValueError`` naming the batch and the fix."""
        torch = self._torch
        try:
            with torch.no_grad():
                loss = self._loss(flat, batch)
        except Exception as err:
            raise ValueError(self._loss_failure(err, batch, index)) from err
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:  # torch.func.grad needs 0-d
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn must return a scalar (0-d) tensor, got {shape}; reduce "
                             f"it (e.g. with .mean(), or .squeeze() for a single value).")

    def _loss_failure(self, err: Exception, batch: tuple, index: int | None) -> str:
        """The one-line message for ``loss_fn`` failing on a batch: the original
        error and, for a floating tensor of another dtype than the model's, the fix."""
        message = " ".join(str(err).split())
        where = "the batch" if index is None else f"batch {index}"
        cause = f"loss_fn failed on {where} with {type(err).__name__}: {message}"
        floating = [(i, t.dtype) for i, t in enumerate(batch)
                    if isinstance(t, self._torch.Tensor) and t.is_floating_point()]
        other = [(i, dtype) for i, dtype in floating if dtype != self.dtype]
        if other:
            i, dtype = other[0]
            return (f"{cause}; tensor {i} of the batch is {dtype} but the model is "
                    f"{self.dtype}: convert the data with .to({self.dtype}) or the model "
                    f"with model.to({dtype}).")
        return (f"{cause}; loss_fn is called as loss_fn(m, *batch) with the batch's "
                f"{len(batch)} tensors, and calls the model as m(X).")

    def _vector(self, x: Any, name: str = "x"):
        x = np.array(x, dtype=float).reshape(-1)  # a writable copy for torch
        if x.size != self.n:
            raise ValueError(f"{name} has {x.size} entries but the model has {self.n} trainable "
                             f"parameters; pass a vector like obj.point().")
        return self._torch.as_tensor(x, dtype=self.dtype, device=self.device)

    def _numpy(self, t) -> np.ndarray:
        return t.detach().cpu().double().numpy().reshape(-1)

    def _loss(self, flat, batch: tuple):
        torch = self._torch
        params = {k: t.view(s) for k, t, s in
                  zip(self._names, torch.split(flat, self._sizes), self._shapes)}
        # train mode may write running statistics: give it fresh copies to write to
        buffers = ({k: b.clone() for k, b in self._buffers.items()} if self.train
                   else self._buffers)
        with _mode(self.model, self.train):
            return self.loss_fn(_Functional(self.model, params, buffers), *batch)


def _sum_dtype(torch: Any, device: Any, dtype: Any) -> Any:
    """float64 where the device holds it (not every accelerator does), else ``dtype``."""
    try:
        torch.zeros(1, dtype=torch.float64, device=device)
    except (TypeError, RuntimeError):
        return dtype
    return torch.float64


class _Functional:
    """Stands for ``model`` with the given parameters and buffers (``functional_call``)."""

    def __init__(self, model: Any, params: dict, buffers: dict):
        self._model, self._params, self._state = model, params, {**buffers, **params}

    def __call__(self, *args: Any, **kwargs: Any):
        from torch.func import functional_call

        return functional_call(self._model, self._state, args, kwargs)

    def named_parameters(self) -> Iterator:
        return iter(self._params.items())

    def parameters(self) -> Iterator:
        return iter(self._params.values())

    def __getattr__(self, name: str):
        raise AttributeError(f"loss_fn's model argument supports m(...), m.parameters() and "
                             f"m.named_parameters() only, not .{name}: submodules would not "
                             f"see the parameters x.")


@contextmanager
def _mode(model: Any, train: bool) -> Iterator[None]:
    flags = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _mode_dependent(torch: Any, model: Any) -> dict[str, bool]:
    """Whether the model has layers that act differently in train and eval mode."""
    nn = torch.nn.modules
    dropout = any(isinstance(m, nn.dropout._DropoutNd) and m.p > 0 for m in model.modules())
    norm = any(isinstance(m, (nn.batchnorm._BatchNorm, nn.instancenorm._InstanceNorm))
               and m.track_running_stats for m in model.modules())
    return {"dropout": dropout, "norm": norm}
