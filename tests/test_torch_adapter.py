"""The PyTorch adapter against the same loss written in JAX and against
torch.autograd.functional.hessian (skipped without torch)."""

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
