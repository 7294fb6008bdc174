"""The PyTorch adapter against the same loss written in JAX and against
torch.autograd.functional.hessian / torch.func.hessian, on one batch and through data
loaders (skipped without torch)."""

import copy
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import flatminima as fm
from flatminima.solvers import ProjectedAscent

torch = pytest.importorskip("torch")
from flatminima.torch_adapter import TorchObjective  # noqa: E402

mse = lambda m, X, Y: ((m(X) - Y) ** 2).mean()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks: one intra-op thread (several stall on a loaded machine); restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mlp(dtype=torch.float64):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).to(dtype)


def _bn_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.Tanh(),
                                torch.nn.Linear(6, 1)).double()
    with torch.no_grad():  # running statistics away from their initial values
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    X, Y = torch.randn(16, 4, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    return model, X, Y


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _exact_hessian(model, loss_fn, *batch):
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    x0 = torch.nn.utils.parameters_to_vector(model.parameters()).detach()

    def f(v):
        params, i = {}, 0
        for k, s in zip(names, shapes):
            params[k] = v[i:i + s.numel()].reshape(s)
            i += s.numel()
        return loss_fn(lambda a: torch.func.functional_call(model, params, (a,)), *batch)

    return torch.autograd.functional.hessian(f, x0.clone()).numpy()


def test_torch_loss_gives_the_same_variation_as_jax():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.standard_normal(20)
    model = _mlp()
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    obj = TorchObjective(model, lambda m, a, b: torch.mean((m(a).squeeze(-1) - b) ** 2), Xt, yt)
    x0 = obj.point()

    def jax_loss(p):  # the same network, parameters in torch's order
        W1, b1 = p[:12].reshape(4, 3), p[12:16]
        W2, b2 = p[16:20].reshape(1, 4), p[20:21]
        out = (jnp.tanh(X @ W1.T + b1) @ W2.T + b2)[:, 0]
        return jnp.mean((out - y) ** 2)

    value, grad = obj.value_and_grad(x0)
    assert value == pytest.approx(float(jax_loss(jnp.asarray(x0))), rel=1e-12)
    v_torch = fm.max_variation(obj, x0, 0.05).value
    v_jax = fm.max_variation(jax_loss, x0, 0.05).value
    assert v_torch == pytest.approx(v_jax, rel=1e-9)
    lam_t = fm.sharpness.hessian_eigmax(obj, x0).value  # exact Hessian-vector products
    lam_j = fm.sharpness.hessian_eigmax(jax_loss, x0).value
    assert lam_t == pytest.approx(lam_j, rel=1e-12)


def test_hvp_is_exact():
    model = _mlp()
    X, Y = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64)
    H = _exact_hessian(model, mse, X, Y)
    obj = TorchObjective(model, mse, X, Y)
    v = np.random.default_rng(1).standard_normal(obj.n)
    np.testing.assert_allclose(obj.hvp(obj.point(), v), H @ v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fm.sharpness.hessian_trace(obj, obj.point()).value, np.trace(H),
                               rtol=1e-12)


def test_measuring_leaves_model_parameters_buffers_and_mode_as_they_were():
    model, X, Y = _bn_model()
    model.train()
    before = _state(model)
    with pytest.warns(UserWarning, match="eval mode"):
        obj = TorchObjective(model, mse, X, Y)
    x0 = obj.point()
    fm.max_variation(obj, x0, 0.3, solver=ProjectedAscent(n_random=1, max_iter=30))
    obj.hvp(x0 + 0.1, np.ones(obj.n))
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and model[1].training
    np.testing.assert_array_equal(obj.point(), x0)


def test_eval_mode_by_default_and_train_mode_batch_statistics_on_request():
    model, X, Y = _bn_model()
    model.train()
    reference = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = TorchObjective(model, mse, X, Y)
    reference.eval()
    with torch.no_grad():
        expected = float(mse(reference, X, Y))
    assert obj.value_and_grad(obj.point())[0] == pytest.approx(expected, rel=1e-14)
    reference.train()
    obj_train = TorchObjective(model, mse, X, Y, train=True)
    with torch.no_grad():
        expected = float(mse(reference, X, Y))  # batch statistics (updates reference's buffers)
    values = [obj_train.value_and_grad(obj_train.point())[0] for _ in range(2)]
    assert values[0] == values[1] == pytest.approx(expected, rel=1e-14)
    assert torch.equal(model[1].running_mean, _bn_model()[0][1].running_mean)
    v = np.random.default_rng(2).standard_normal(obj_train.n)
    H = _exact_hessian(reference, mse, X, Y)  # train mode: batch statistics
    np.testing.assert_allclose(obj_train.hvp(obj_train.point(), v), H @ v, rtol=1e-10, atol=1e-12)


def test_train_mode_with_dropout_is_refused():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1)).double()
    X, Y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="train=False"):
        TorchObjective(model, mse, X, Y, train=True)


def test_float32_model_is_computed_in_float32():
    X, Y = torch.randn(10, 3), torch.randn(10, 1)
    model32 = _mlp(torch.float32)
    model64 = copy.deepcopy(model32).double()
    obj32 = TorchObjective(model32, mse, X, Y)
    obj64 = TorchObjective(model64, mse, X.double(), Y.double())
    assert obj32.dtype == torch.float32 and obj64.dtype == torch.float64
    x0 = obj64.point()
    v32, g32 = obj32.value_and_grad(x0)
    v64, g64 = obj64.value_and_grad(x0)
    assert v32 != v64 and v32 == pytest.approx(v64, rel=1e-5)  # float32 rounding, not float64
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5)


def test_weight_decay_through_m_parameters():
    model = _mlp()
    X, Y = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64)
    decay = lambda m, X, Y: mse(m, X, Y) + 0.1 * sum((p ** 2).sum() for p in m.parameters())
    plain, decayed = TorchObjective(model, mse, X, Y), TorchObjective(model, decay, X, Y)
    x0 = plain.point()
    np.testing.assert_allclose(decayed.value_and_grad(x0)[1] - plain.value_and_grad(x0)[1],
                               0.2 * x0, rtol=1e-12)


def test_bad_input_errors_name_the_fix():
    model = _mlp()
    X, Y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    frozen = _mlp().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        TorchObjective(frozen, mse, X, Y)
    with pytest.raises(ValueError, match="scalar"):
        TorchObjective(model, lambda m, X, Y: (m(X) - Y) ** 2, X, Y)
    X_nan = X.clone()
    X_nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        TorchObjective(model, mse, X_nan, Y)
    with pytest.raises(ValueError, match="device"):
        TorchObjective(model, mse, X.to("meta"), Y)
    obj = TorchObjective(model, mse, X, Y)
    with pytest.raises(ValueError, match="21 trainable parameters"):
        obj.value_and_grad(np.zeros(5))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        TorchObjective(lambda x: x, mse, X, Y)


def test_randomness_in_the_model_is_refused_before_any_computation():
    """A noise layer (any randomness, not only nn.Dropout) makes f not a function: the
    two evaluations at x differ and the error names the fix."""

    class Noise(torch.nn.Module):
        def forward(self, x):
            return x + 0.1 * torch.randn_like(x)

    torch.manual_seed(0)
    X, Y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), Noise(), torch.nn.Linear(4, 1)).double()
    obj = TorchObjective(model, lambda m, X, Y: ((m(X) - Y) ** 2).mean(), X, Y)
    with pytest.raises(ValueError, match="not deterministic.*eval"):
        fm.max_variation(obj, obj.point(), 0.01)


# --- through a data loader: f = (1/N) sum_b n_b loss_fn(m, *batch_b) ------------------------


def _loader(X, Y, batch_size, **kwargs):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=batch_size,
                                       **kwargs)


def _whole(model, loss_fn, *batch):
    """The whole-data loss as a function of the flat parameters, by torch.func directly."""
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]

    def f(v):
        parts = torch.split(v, [s.numel() for s in shapes])
        params = {k: p.reshape(s) for k, p, s in zip(names, parts, shapes)}
        return loss_fn(lambda a: torch.func.functional_call(model, params, (a,)), *batch)

    return f


def _relative(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("kind", ["loader", "list", "shuffled"])
def test_loader_gives_the_whole_data_value_gradient_and_hessian(kind):
    torch.manual_seed(1)
    X, Y = torch.randn(23, 3, dtype=torch.float64), torch.randn(23, 1, dtype=torch.float64)
    model = _mlp()
    if kind == "list":  # any re-iterable of tuples, very uneven (a batch of one example)
        data, sizes = [(X[:7], Y[:7]), [X[7:8], Y[7:8]], (X[8:], Y[8:])], (3, 23)
    else:  # 4 x 5 + 3
        gen = torch.Generator().manual_seed(0)
        data, sizes = _loader(X, Y, 5, shuffle=kind == "shuffled", generator=gen), (5, 23)
    obj = TorchObjective(model, mse, data=data)
    assert (obj.num_batches, obj.num_examples) == sizes
    f = _whole(model, mse, X, Y)
    x = obj.point()
    xt = torch.tensor(x)
    H = torch.func.hessian(f)(xt).numpy()
    v = np.random.default_rng(1).standard_normal(obj.n)
    value, grad = obj.value_and_grad(x)
    assert isinstance(value, float) and grad.dtype == np.float64
    assert abs(value - float(f(xt))) <= 1e-12 * float(f(xt))
    assert _relative(grad, torch.func.grad(f)(xt).numpy()) <= 1e-12
    assert _relative(obj.hvp(x, v), H @ v) <= 1e-12
    top = fm.sharpness.hessian_eigmax(obj, x, method="lanczos", rtol=1e-10).value
    assert abs(top - np.linalg.eigvalsh(H)[-1]) <= 1e-8 * abs(np.linalg.eigvalsh(H)[-1])


def test_shuffled_loader_rounds_differently_and_is_accepted():
    """Each pass groups the examples differently: values differ by rounding only, which
    the determinism check of the measures accepts; a noise layer is still refused."""
    torch.manual_seed(1)
    X, Y = torch.randn(23, 3, dtype=torch.float64), torch.randn(23, 1, dtype=torch.float64)
    model = _mlp()
    gen = torch.Generator().manual_seed(0)
    obj = TorchObjective(model, mse, data=_loader(X, Y, 5, shuffle=True, generator=gen))
    x = obj.point()
    values = [obj.value_and_grad(x)[0] for _ in range(8)]
    assert len(set(values)) > 1  # this seed's passes do round differently
    assert max(values) - min(values) <= 8 * np.finfo(float).eps * max(values)
    fm.max_variation(obj, x, 0.1, solver=ProjectedAscent(n_random=1, max_iter=20))

    class Noise(torch.nn.Module):
        def forward(self, x):
            return x + 0.1 * torch.randn_like(x)

    noisy = torch.nn.Sequential(torch.nn.Linear(3, 4), Noise(), torch.nn.Linear(4, 1)).double()
    obj = TorchObjective(noisy, mse, data=[(X[:10], Y[:10]), (X[10:], Y[10:])])
    with pytest.raises(ValueError, match=r"not deterministic.*shuffle=False"):
        fm.max_variation(obj, obj.point(), 0.01)


def test_measuring_through_a_loader_leaves_the_model_as_it_was():
    model, X, Y = _bn_model()
    model.train()
    before = _state(model)
    with pytest.warns(UserWarning, match="eval mode"):
        obj = TorchObjective(model, mse, data=_loader(X, Y, 6))
    x0 = obj.point()
    fm.max_variation(obj, x0, 0.3, solver=ProjectedAscent(n_random=1, max_iter=30))
    obj.hvp(x0 + 0.1, np.ones(obj.n))
    # train mode: each batch normalized with its own statistics, the running ones untouched
    obj_train = TorchObjective(model, mse, data=_loader(X, Y, 6), train=True)
    reference = copy.deepcopy(model).train()
    with torch.no_grad():  # batches 6, 6, 4 (updates reference's buffers only)
        expected = sum(len(a) * float(mse(reference, a, b)) for a, b in _loader(X, Y, 6)) / 16
    assert obj_train.value_and_grad(x0)[0] == pytest.approx(expected, rel=1e-14)
    obj_train.hvp(x0, np.ones(obj.n))
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and model[1].training
    np.testing.assert_array_equal(obj.point(), x0)


def test_float32_model_through_a_loader_is_computed_in_float32():
    torch.manual_seed(2)
    X, Y = torch.randn(23, 3), torch.randn(23, 1)
    model32 = _mlp(torch.float32)
    model64 = copy.deepcopy(model32).double()
    obj32 = TorchObjective(model32, mse, data=_loader(X, Y, 5))
    obj64 = TorchObjective(model64, mse, data=_loader(X.double(), Y.double(), 5))
    assert obj32.dtype == torch.float32 and obj64.dtype == torch.float64
    x0 = obj64.point()
    v = np.random.default_rng(3).standard_normal(obj64.n)
    v32, g32 = obj32.value_and_grad(x0)
    v64, g64 = obj64.value_and_grad(x0)
    hv32, hv64 = obj32.hvp(x0, v), obj64.hvp(x0, v)
    assert isinstance(v32, float) and g32.dtype == hv32.dtype == np.float64
    assert v32 != v64 and v32 == pytest.approx(v64, rel=1e-5)  # float32 rounding, not float64
    assert _relative(g32, g64) <= 1e-5 and _relative(hv32, hv64) <= 1e-5
    shuffled = TorchObjective(model32, mse, data=_loader(X, Y, 5, shuffle=True))
    top = fm.sharpness.hessian_eigmax(shuffled, x0, method="lanczos").value  # accepted
    assert top == pytest.approx(fm.sharpness.hessian_eigmax(obj64, x0, method="lanczos").value,
                                rel=1e-4)


def test_bad_data_errors_name_the_fix():
    model = _mlp()
    X, Y = torch.randn(12, 3, dtype=torch.float64), torch.randn(12, 1, dtype=torch.float64)
    batches = [(X[:5], Y[:5]), (X[5:], Y[5:])]
    empty = torch.utils.data.TensorDataset(X[:0], Y[:0])
    with pytest.raises(ValueError, match="data is empty; pass at least one batch"):
        TorchObjective(model, mse, data=torch.utils.data.DataLoader(empty, batch_size=4))
    X_nan = X.clone()
    X_nan[9, 1] = float("inf")
    with pytest.raises(ValueError, match=r"batch 2 \(tensor 0\) holds NaN or infinite values"):
        TorchObjective(model, mse, data=_loader(X_nan, Y, 4))
    with pytest.raises(ValueError, match=r"batch 1 \(tensor 1\) is on device meta.*move the data"):
        TorchObjective(model, mse, data=[batches[0], (X[5:], Y[5:].to("meta"))])
    with pytest.raises(ValueError, match="batch 1 has 1 tensors but batch 0 has 2"):
        TorchObjective(model, mse, data=[batches[0], (X[5:],)])
    with pytest.raises(ValueError, match=r"scalar \(0-d\) tensor, got \(5, 1\); reduce it"):
        TorchObjective(model, lambda m, X, Y: (m(X) - Y) ** 2, data=batches)
    with pytest.raises(ValueError, match=r"got \(1,\); reduce it .*\.squeeze\(\)"):
        TorchObjective(model, lambda m, X, Y: mse(m, X, Y).reshape(1), data=batches)
    with pytest.raises(ValueError, match="no trainable parameters"):
        TorchObjective(_mlp().requires_grad_(False), mse, data=batches)
    obj = TorchObjective(model, mse, data=batches)
    with pytest.raises(ValueError, match="x has 5 entries but the model has 21 trainable"):
        obj.value_and_grad(np.zeros(5))
    with pytest.raises(ValueError, match="v has 5 entries"):
        obj.hvp(obj.point(), np.zeros(5))
    with pytest.raises(TypeError, match=r"as a keyword: TorchObjective\(model, loss_fn, data=loader\)"):
        TorchObjective(model, mse, _loader(X, Y, 4))
    with pytest.raises(TypeError, match="not both"):
        TorchObjective(model, mse, X, Y, data=batches)
    with pytest.raises(TypeError, match="one-shot iterator"):
        TorchObjective(model, mse, data=(b for b in batches))
    with pytest.raises(TypeError, match="re-iterable of batches"):
        TorchObjective(model, mse, data=X)
    with pytest.raises(TypeError, match="batch 0 is a dict"):
        TorchObjective(model, mse, data=[{"X": X, "Y": Y}])
    with pytest.raises(ValueError, match="batch 1 has no examples"):
        TorchObjective(model, mse, data=[batches[0], (X[:0], Y[:0])])
    with pytest.raises(ValueError, match="drop_last=False or shuffle=False"):
        TorchObjective(model, mse, data=_loader(X, Y, 5, shuffle=True, drop_last=True))
    bn_model, Xb, Yb = _bn_model()
    with pytest.raises(ValueError, match="shuffle=False or use train=False"):
        TorchObjective(bn_model, mse, data=_loader(Xb, Yb, 6, shuffle=True), train=True)
    batches.append((X[:3], Y[:3]))  # the data change after construction
    with pytest.raises(ValueError, match="gave 15 examples, not the 12 of the first"):
        obj.value_and_grad(obj.point())


def test_one_batch_counts_as_one_batch_of_its_examples():
    X, Y = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64)
    obj = TorchObjective(_mlp(), mse, X, Y)
    assert (obj.num_batches, obj.num_examples, obj.data) == (1, 10, None)
    assert TorchObjective(_mlp(), lambda m: sum((p ** 2).sum() for p in m.parameters())).num_examples is None


def test_a_later_batch_the_loss_fails_on_is_named_at_construction():
    """The loss is evaluated on every batch at construction: a later batch with another
    feature width would otherwise fail inside torch in the middle of a measure. Batches
    may differ past the leading axis (sequences padded per batch), not in dtype."""
    model = _mlp()
    X, Y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64)
    wide = torch.randn(10, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^loss_fn failed on batch 1 with RuntimeError: "):
        TorchObjective(model, mse, data=[(X[:10], Y[:10]), (wide, Y[10:])])
    with pytest.raises(ValueError, match=r"batch 2 \(tensor 1\) has shape \(5, 1\) and dtype "
                                         r"torch.float32 .*same number of axes and dtype"):
        TorchObjective(model, mse, data=[(X[:10], Y[:10]), (X[10:15], Y[10:15]),
                                         (X[15:], Y[15:].float())])
    # batches of other leading sizes are the normal case
    assert TorchObjective(model, mse, data=[(X[:10], Y[:10]), (X[10:11], Y[10:11])]).num_examples == 11
    # sequences padded to each batch's own length: the loss masks the padding
    seq = lambda m, S, M: ((m(S) ** 2).squeeze(-1) * M).sum() / M.sum()
    short, long = torch.randn(4, 5, 3, dtype=torch.float64), torch.randn(4, 7, 3, dtype=torch.float64)
    padded = [(short, torch.ones(4, 5, dtype=torch.float64)), (long, torch.ones(4, 7, dtype=torch.float64))]
    assert TorchObjective(model, seq, data=padded).num_batches == 2


def test_loss_fn_failing_on_the_first_batch_names_the_error_and_the_fix():
    X, Y = torch.randn(12, 3, dtype=torch.float64), torch.randn(12, 1, dtype=torch.float64)
    model32 = _mlp(torch.float32)
    for args, kwargs in (((X, Y), {}), ((), {"data": _loader(X, Y, 4)})):
        with pytest.raises(ValueError, match=r"^loss_fn failed on (the batch|batch 0) with "
                                             r"RuntimeError: .*dtype.*tensor 0 of the batch is "
                                             r"torch.float64 but the model is torch.float32: "
                                             r"convert the data with \.to\(torch.float32\)") as info:
            TorchObjective(model32, mse, *args, **kwargs)
        assert "\n" not in str(info.value) and isinstance(info.value.__cause__, RuntimeError)
    three = lambda m, X, Y, W: ((m(X) - Y) ** 2 * W).mean()  # the batch has two tensors
    with pytest.raises(ValueError, match=r"with TypeError: .*missing 1 required positional.*"
                                         r"loss_fn\(m, \*batch\) with the batch's 2 tensors"):
        TorchObjective(_mlp(), three, data=[(X, Y)])


def test_a_tuple_of_tensors_as_data_is_refused_as_one_batch():
    X, Y = torch.randn(12, 3, dtype=torch.float64), torch.randn(12, 1, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"data is a tuple of 2 tensors.*TorchObjective\(model, "
                                        r"loss_fn, X, Y\), or data=\[\(X, Y\)\] or a DataLoader"):
        TorchObjective(_mlp(), mse, data=(X, Y))
    # a list of batches, and a tuple of batches, are data
    assert TorchObjective(_mlp(), mse, data=[(X, Y)]).num_batches == 1
    assert TorchObjective(_mlp(), mse, data=((X[:6], Y[:6]), (X[6:], Y[6:]))).num_batches == 2


def test_a_noisy_float32_model_over_batches_is_refused():
    """A noise of 1e-5 in a float32 model over 2 batches moves the loss by about 2e-6
    relative: above the rounding allowance min(4 sqrt(B) eps, 1e-6) = 6.7e-7, below the
    former allowance 1e3 eps = 1.2e-4, which let it through."""

    class Noisy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)

        def forward(self, X):
            return self.lin(X) + 1e-5 * torch.randn(X.shape[0], 1)

    torch.manual_seed(0)
    X, Y = torch.randn(40, 3), torch.randn(40, 1)
    obj = TorchObjective(Noisy(), mse, data=[(X[:20], Y[:20]), (X[20:], Y[20:])])
    x = obj.point()
    torch.manual_seed(5)
    a, b = obj.value_and_grad(x)[0], obj.value_and_grad(x)[0]
    eps = float(torch.finfo(torch.float32).eps)
    assert 4 * np.sqrt(2) * eps < abs(a - b) / max(a, b) < 1e3 * eps
    torch.manual_seed(5)  # the same two draws in the check
    with pytest.raises(ValueError, match=r"not deterministic.*shuffle=False"):
        fm.max_variation(obj, x, 0.1)


class _TwoValues:
    """An object summing over batches whose evaluations alternate between 1 and 1 + delta."""

    def __init__(self, delta, dtype, num_batches):
        self.delta, self.dtype, self.num_batches, self.calls = delta, dtype, num_batches, 0

    def value_and_grad(self, x):
        self.calls += 1
        return 1.0 + self.delta * (self.calls % 2 == 0), np.zeros_like(x)

    def hvp(self, x, v):
        return np.zeros_like(v)


@pytest.mark.parametrize(("dtype", "num_batches", "allowance"), [
    (torch.float64, 4, 8 * float(np.finfo(np.float64).eps)),  # 4 sqrt(4) eps
    (torch.float32, 4, 8 * float(np.finfo(np.float32).eps)),
    (torch.float32, 100, 1e-6),  # 40 eps capped
    (torch.float16, 2, 1e-6),  # float16 and bfloat16: the cap, not thousands of eps
    (torch.bfloat16, 2, 1e-6),
])
def test_batched_objects_may_differ_by_rounding_and_no_more(dtype, num_batches, allowance):
    from flatminima._objective import as_objective

    as_objective(_TwoValues(0.9 * allowance, dtype, num_batches), np.zeros(2))
    with pytest.raises(ValueError, match="not deterministic"):
        as_objective(_TwoValues(1.1 * allowance, dtype, num_batches), np.zeros(2))
    with pytest.raises(ValueError, match="not deterministic"):  # one batch: exactly
        as_objective(_TwoValues(0.9 * allowance, dtype, 1), np.zeros(2))


def test_the_parameters_as_a_tensor_are_a_point():
    """``parameters_to_vector(model.parameters())`` (a tensor that requires grad) is read as
    a NumPy copy: the same point as ``obj.point()``, the model untouched."""
    model = _mlp()
    X, Y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    obj = TorchObjective(model, mse, X, Y)
    vec = torch.nn.utils.parameters_to_vector(model.parameters())
    assert vec.requires_grad
    a = fm.max_variation(obj, vec, 0.1)
    b = fm.max_variation(obj, obj.point(), 0.1)
    assert a.value == b.value
    assert torch.equal(vec, torch.nn.utils.parameters_to_vector(model.parameters()))
