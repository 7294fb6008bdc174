"""The data of a :class:`~flatminima.torch_adapter.TorchObjective`: one fixed batch, or a
data loader read again at every evaluation, with the checks made when it is first read.

A loader's batches are weighted by ``n_b / N`` (``n_b`` the leading size of the batch's
first tensor, ``N`` their sum), so that the weighted sum of batch means is the mean over
the whole data set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


def check_tensors(torch: Any, batch: tuple, device: Any, label: str) -> None:
    """Refuse tensors on another device than the model's, or holding NaN or inf;
    ``label.format(i)`` names the ``i``-th tensor in the error."""
    for i, t in enumerate(batch):
        if not isinstance(t, torch.Tensor):
            continue
        name = label.format(i)
        if t.device != device:
            raise ValueError(f"{name} is on device {t.device} but the model is on {device}; "
                             f"move the data with .to({str(device)!r}) (for a DataLoader, build "
                             f"its dataset from tensors on that device).")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds NaN or infinite values; remove or replace them "
                             f"before measuring.")


class Loader:
    """A re-iterable of batches (tuples or lists of tensors, or single tensors), checked
    and counted by one pass at construction: ``num_batches``, ``num_examples``.

    ``check(batch, index)`` is called on every batch as soon as its tensors are checked
    (the caller evaluates the loss on it: one forward pass over the data, so that a batch
    the loss fails on is named here rather than in the middle of a measure); no batch is
    kept. Batches may differ in every axis but the leading one (sequences padded per
    batch), not in their number of tensors, axes or dtypes.
    """

    def __init__(self, torch: Any, data: Any, device: Any, check: Callable[[tuple, int], None]):
        if isinstance(data, tuple) and data and all(isinstance(t, torch.Tensor) for t in data):
            raise TypeError(f"data is a tuple of {len(data)} tensors, which would be read as "
                            f"{len(data)} batches; pass one batch positionally: "
                            f"TorchObjective(model, loss_fn, X, Y), or data=[(X, Y)] or a "
                            f"DataLoader.")
        if isinstance(data, torch.Tensor) or not isinstance(data, Iterable):
            raise TypeError(f"data must be a re-iterable of batches (a torch DataLoader, or a "
                            f"list of (X, y) tuples), got {type(data).__name__}; pass a single "
                            f"batch positionally: TorchObjective(model, loss_fn, X, y).")
        if iter(data) is data:
            raise TypeError("data is a one-shot iterator (a generator); pass a DataLoader or "
                            "a list of batches, since every evaluation reads the data again.")
        self.data, self.shuffled = data, _shuffled(torch, data)
        if getattr(data, "drop_last", False) and self.shuffled:
            raise ValueError("data shuffles and drops the last incomplete batch, so each pass "
                             "reads different examples; pass drop_last=False or shuffle=False.")
        self.num_batches = self.num_examples = 0
        head: tuple = ()
        for index, batch in enumerate(data):
            batch = _as_tuple(torch, batch, index)
            if index == 0:
                head = batch
            else:
                _check_like(torch, batch, head, index)
            check_tensors(torch, batch, device, f"batch {index} (tensor {{}})")
            size = _size(torch, batch, index)
            if size == 0:
                raise ValueError(f"batch {index} has no examples; remove it from the data.")
            check(batch, index)
            self.num_batches, self.num_examples = index + 1, self.num_examples + size
        if self.num_batches == 0:
            raise ValueError("data is empty; pass at least one batch (a DataLoader over a "
                             "non-empty data set, or a non-empty list of batches).")

    def weighted(self, torch: Any) -> Iterator[tuple[float, tuple]]:
        """``(n_b / N, batch_b)`` for each batch of a new pass over the data."""
        total = 0
        for index, batch in enumerate(self.data):
            batch = _as_tuple(torch, batch, index)
            size = _size(torch, batch, index)
            total += size
            yield size / self.num_examples, batch
        if total != self.num_examples:
            raise ValueError(f"a pass over data gave {total} examples, not the "
                             f"{self.num_examples} of the first; pass data that yield the same "
                             f"examples at every pass.")


def _check_like(torch: Any, batch: tuple, head: tuple, index: int) -> None:
    """Refuse a batch whose tensors differ from those of batch 0 (``head``) in number, in
    number of axes or in dtype."""
    if len(batch) != len(head):
        raise ValueError(f"batch {index} has {len(batch)} tensors but batch 0 has "
                         f"{len(head)}; every batch must hold the same tensors.")
    for i, (t, t0) in enumerate(zip(batch, head)):
        if not (isinstance(t, torch.Tensor) and isinstance(t0, torch.Tensor)):
            continue
        if t.ndim == t0.ndim and t.dtype == t0.dtype:
            continue
        raise ValueError(f"batch {index} (tensor {i}) has shape {tuple(t.shape)} and dtype "
                         f"{t.dtype} but batch 0's has shape {tuple(t0.shape)} and dtype "
                         f"{t0.dtype}; every batch's tensors must have the same number of axes "
                         f"and dtype: reshape or convert the data.")


def _as_tuple(torch: Any, batch: Any, index: int) -> tuple:
    if isinstance(batch, torch.Tensor):
        return (batch,)
    if not isinstance(batch, (tuple, list)):
        raise TypeError(f"batch {index} is a {type(batch).__name__}; each batch must be a "
                        f"tuple or list of tensors (loss_fn(m, *batch)) or a single tensor.")
    return tuple(batch)


def _size(torch: Any, batch: tuple, index: int) -> int:
    head = batch[0] if batch else None
    if not isinstance(head, torch.Tensor) or head.ndim == 0:
        raise ValueError(f"batch {index} does not start with a tensor of examples; its first "
                         f"tensor's leading axis counts the examples (n_b).")
    return int(head.shape[0])


def _shuffled(torch: Any, data: Any) -> bool:
    return isinstance(getattr(data, "sampler", None), torch.utils.data.RandomSampler)
