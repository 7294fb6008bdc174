"""The PyTorch adapter against the same loss written in JAX (skipped without torch)."""

import jax.numpy as jnp
import numpy as np
import pytest

import flatminima as fm

torch = pytest.importorskip("torch")
from flatminima.torch_adapter import TorchObjective  # noqa: E402


def test_torch_loss_gives_the_same_variation_as_jax():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.standard_normal(20)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
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
    lam_t = fm.sharpness.hessian_eigmax(obj, x0).value  # central differences of gradients
    lam_j = fm.sharpness.hessian_eigmax(jax_loss, x0).value
    assert lam_t == pytest.approx(lam_j, rel=1e-6)


def test_wrong_size_is_an_error():
    model = torch.nn.Linear(2, 1).double()
    obj = TorchObjective(model, lambda m: m(torch.ones(1, 2, dtype=torch.float64)).sum())
    with pytest.raises(ValueError, match="parameters"):
        obj.value_and_grad(np.zeros(5))
