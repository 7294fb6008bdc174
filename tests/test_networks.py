"""Balanced representatives of ReLU networks (SPEC section 12), checked against closed
forms, an independent per-layer rescaling iteration, the flattening flow of SPEC section 8,
and invariance of the function."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import flatminima as fm
from flatminima._training import cnn_logits, init_cnn
from flatminima.networks import mlp_forward, neuron_imbalance


def random_mlp(widths, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((o, i)), rng.standard_normal(o))
            for i, o in zip(widths[:-1], widths[1:])]


def max_rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def test_balancing_keeps_outputs_and_zeroes_every_conserved_quantity():
    p = random_mlp([5, 7, 6, 3])
    X = np.random.default_rng(1).standard_normal((40, 5))
    res = fm.balance_network(p, inputs=X)
    assert res.converged and res.imbalance_before > 1.0
    assert max(np.abs(q).max() for q in neuron_imbalance(res.params)) < 1e-12
    assert res.output_change < 1e-13
    assert max_rel(mlp_forward(res.params, X), mlp_forward(p, X)) < 1e-13
    assert isinstance(res.params, list) and all(isinstance(t, tuple) for t in res.params)


def test_two_layer_scalar_network_balances_to_the_geometric_mean():
    # f = w2 relu(w1 x): the orbit (a w1, w2 / a); balanced |w1| = |w2| = sqrt(|w1 w2|)
    res = fm.balance_network([(np.array([[9.0]]), None), (np.array([[0.25]]), None)])
    assert float(res.params[0][0][0, 0]) == pytest.approx(1.5, rel=1e-14)
    assert float(res.params[1][0][0, 0]) == pytest.approx(1.5, rel=1e-14)
    assert res.scales[0][0] == pytest.approx(1.0 / 6.0, rel=1e-14)


def test_balanced_point_depends_only_on_the_orbit_and_minimizes_the_norm():
    p = random_mlp([4, 6, 5, 2], seed=3)
    rng = np.random.default_rng(4)
    ref = fm.balance_network(p)
    for _ in range(3):
        scales = [np.exp(2.0 * rng.standard_normal(n)) for n in (6, 5)]
        moved = fm.rescale_network(p, scales)
        other = fm.balance_network(moved)
        for (W, b), (W2, b2) in zip(ref.params, other.params):
            assert max_rel(W2, W) < 1e-10 and max_rel(b2, b) < 1e-10
        # the balanced squared norm is below that of every orbit point tried
        assert ref.squared_norm_after <= other.squared_norm_before
    assert ref.squared_norm_after < ref.squared_norm_before


def alternating_rescaling(p, sweeps=3000):
    """Independent method: exact per-layer minimization, a_j^4 = ||w_out||^2 / ||w_in||^2."""
    p = [(np.array(W), np.array(b)) for W, b in p]
    for _ in range(sweeps):
        for h in range(len(p) - 1):
            (W, b), (V, c) = p[h], p[h + 1]
            a = ((V**2).sum(0) / ((W**2).sum(1) + b**2)) ** 0.25
            p[h], p[h + 1] = (W * a[:, None], b * a), (V / a[None, :], c)
    return p


def test_newton_agrees_with_alternating_per_layer_rescaling():
    p = random_mlp([3, 4, 4, 2], seed=5)
    res = fm.balance_network(p)
    for (W, b), (W2, b2) in zip(res.params, alternating_rescaling(p)):
        assert max_rel(W, W2) < 1e-9 and max_rel(b, b2) < 1e-9


def test_flattening_flow_of_the_conserved_quantities_reaches_the_balanced_point():
    p = random_mlp([2, 3, 1], seed=6)
    X = np.random.default_rng(7).standard_normal((8, 2))
    shapes = [(3, 2), (3,), (1, 3), (1,)]

    def unpack(v):
        out, i = [], 0
        for s in shapes:
            n = int(np.prod(s))
            out.append(v[i:i + n].reshape(s))
            i += n
        return [(out[0], out[1]), (out[2], out[3])]

    loss = lambda v: jnp.mean(mlp_forward(unpack(v), X) ** 2)
    q = lambda v: ((unpack(v)[0][0] ** 2).sum(1) + unpack(v)[0][1] ** 2
                   - (unpack(v)[1][0] ** 2).sum(0))
    x0 = np.concatenate([a.ravel() for pair in p for a in pair])
    # the flattening flow y' = -grad phi, phi = 1/2 ||q||^2 (SPEC section 8)
    flow = fm.gradient_flow(lambda v: 0.5 * jnp.sum(q(v) ** 2), x0, 30.0, n_save=2)
    balanced = np.concatenate([np.asarray(a).ravel() for pair in fm.balance_network(p).params
                               for a in pair])
    assert abs(float(loss(flow.points[-1])) - float(loss(x0))) < 1e-9 * float(loss(x0))
    assert np.max(np.abs(flow.points[-1] - balanced)) < 1e-6


def test_dead_neuron_is_reported_and_left_alone():
    p = random_mlp([3, 4, 2], seed=8)
    p[1][0][:, 2] = 0.0  # unit 2 of the hidden layer has no outgoing weights
    with pytest.warns(UserWarning, match="dead hidden unit"):
        res = fm.balance_network(p)
    assert res.dead_neurons == [(0, 2)]
    assert res.scales[0][2] == 1.0 and np.all(np.isfinite(res.scales[0]))
    q = neuron_imbalance(res.params)[0]
    assert np.abs(np.delete(q, 2)).max() < 1e-12


def test_rescaling_orbit_keeps_the_loss_while_the_hessian_grows():
    p = random_mlp([3, 5, 1], seed=9)
    X = np.random.default_rng(10).standard_normal((12, 3))
    y = np.sin(X[:, 0])
    bal = fm.balance_network(p).params
    unravel = ravel_pytree(bal)[1]
    loss = lambda v: jnp.mean((mlp_forward(unravel(v), X)[:, 0] - y) ** 2)
    eig = []
    for t in (0.0, 3.0):
        moved = ravel_pytree(fm.rescale_network(bal, [np.full(5, np.exp(t))]))[0]
        assert float(loss(moved)) == pytest.approx(float(loss(ravel_pytree(bal)[0])), rel=1e-12)
        eig.append(fm.sharpness.hessian_eigmax(loss, moved).value)
    # the Hessian block of the output weights (indices 20..24) scales exactly like e^{2t}, so by
    # interlacing lambda_max(t) >= e^{2t} lambda_max(block at t = 0)
    H = np.asarray(jax.hessian(loss)(ravel_pytree(bal)[0]))[20:25, 20:25]
    assert eig[1] >= np.exp(6.0) * np.linalg.eigvalsh(H)[-1] * (1 - 1e-10)
    assert eig[1] > 50 * eig[0]


def test_flatness_before_and_after_is_reported_with_the_loss():
    p = random_mlp([3, 4, 1], seed=11)
    p[0] = (p[0][0] * 5.0, p[0][1] * 5.0)
    X = np.random.default_rng(12).standard_normal((10, 3))
    loss = lambda q: jnp.mean(mlp_forward(q, X) ** 2)
    res = fm.balance_network(p, loss=loss, radius=0.01)
    assert res.loss_after == pytest.approx(res.loss_before, rel=1e-12)
    unravel = ravel_pytree(p)[1]
    flat_loss = lambda v: loss(unravel(v))
    direct = fm.max_variation(flat_loss, ravel_pytree(res.params)[0], 0.01).value
    assert res.flatness_after == pytest.approx(direct, rel=1e-12)
    H = np.asarray(jax.hessian(flat_loss)(ravel_pytree(p)[0]))  # dense, independent
    assert res.eigmax_before == pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-10)


def test_cnn_layout_channels_and_flattened_columns():
    p = init_cnn(jax.random.PRNGKey(0))
    rng = np.random.default_rng(13)
    p = [(W * np.exp(rng.standard_normal(W.shape[0])).reshape((-1,) + (1,) * (W.ndim - 1)), b + 0.1)
         for W, b in p]
    X = rng.uniform(size=(6, 64))
    res = fm.balance_network(p, inputs=X, forward=cnn_logits)
    assert res.output_change < 1e-13 and res.imbalance_after < 1e-12
    assert [s.shape for s in res.scales] == [(4,), (8,)]


def test_bad_input_is_a_clear_error():
    p = random_mlp([3, 4, 2])
    with pytest.raises(ValueError, match="at least two layers"):
        fm.balance_network(p[:1])
    with pytest.raises(ValueError, match="not a multiple"):
        fm.balance_network([p[0], (np.ones((2, 5)), np.ones(2))])
    with pytest.raises(ValueError, match="b has shape"):
        fm.balance_network([p[0], (p[1][0], np.ones(3))])
    with pytest.raises(ValueError, match="positive"):
        fm.rescale_network(p, [np.array([1.0, -1.0, 1.0, 1.0])])
    with pytest.raises(ValueError, match="one array per hidden layer"):
        fm.rescale_network(p, [np.ones(4), np.ones(2)])
    with pytest.raises(TypeError, match="nn.Sequential or a list"):
        fm.balance_network("model")


def test_torch_sequential_with_convolution_is_balanced_without_touching_the_model():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Conv2d(3, 4, 2),
        torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 2 * 2, 5), torch.nn.ReLU(),
        torch.nn.Linear(5, 2)).double()
    with torch.no_grad():
        model[0].weight.mul_(7.0)
    before = [t.clone() for t in model.parameters()]
    x = torch.randn(9, 1, 9, 9, dtype=torch.float64)
    res = fm.balance_network(model, inputs=x)
    assert isinstance(res.params, torch.nn.Sequential) and res.params is not model
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert res.output_change < 1e-13 and res.imbalance_after < 1e-12
    assert [s.shape for s in res.scales] == [(3,), (4,), (5,)]
    with pytest.raises(ValueError, match="Tanh"):
        fm.balance_network(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(),
                                               torch.nn.Linear(3, 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fm.balance_network(model)


def test_float32_model_reports_the_imbalance_of_its_rounded_weights():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    res = fm.balance_network(model)
    q = neuron_imbalance(res.params)[0]
    assert res.imbalance_after == pytest.approx(np.abs(q).max(), rel=1e-12)
    assert res.params[0].weight.dtype == torch.float32
