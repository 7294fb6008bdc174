"""Objectives over data sets in batches: exact full-data averages, the same network in
Equinox and PyTorch, sharding across devices, and bad input."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import flatminima as fm
from flatminima.solvers import ProjectedAscent

eqx = pytest.importorskip("equinox")

N, D, H, C = 130, 6, 5, 3  # examples, features, hidden units, classes: n = 53 parameters
EDGES = [0, 20, 40, 60, 80, 100, 120, 130]  # 7 batches, the last one shorter


def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D))
    y = np.argmax(X[:, :C] + 0.5 * rng.standard_normal((N, C)), axis=1)
    return X, y


def cross_entropy(model, batch):
    X, y = batch
    logits = jax.vmap(model)(X)
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, y[:, None], 1)[:, 0])


def equinox_model():
    return eqx.nn.MLP(D, C, H, 1, activation=jnp.tanh, key=jax.random.PRNGKey(1))


def batches_of(X, y):
    return [(X[a:b], y[a:b]) for a, b in zip(EDGES, EDGES[1:])]


def whole_loss(model):
    """The loss on the whole data set at a flat point, written directly (no batches)."""
    X, y = data()
    params, static = eqx.partition(model, eqx.is_inexact_array)
    unravel = ravel_pytree(params)[1]
    return lambda x: cross_entropy(eqx.combine(unravel(x), static), (X, y))


def relative(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("kind", ["in_memory", "streamed"])
def test_uneven_batches_give_the_whole_data_average(kind):
    X, y = data()
    model = equinox_model()
    cls = fm.DatasetLoss if kind == "in_memory" else fm.StreamedDatasetLoss
    f = cls(cross_entropy, batches_of(X, y), model)
    assert (f.num_batches, f.num_examples, f.n) == (7, N, D * H + H + H * C + C)
    ref = whole_loss(model)
    x = np.asarray(f.point())
    v = np.random.default_rng(1).standard_normal(f.n)
    value, grad = jax.value_and_grad(ref)(jnp.asarray(x))
    hv = jax.jvp(jax.grad(ref), (jnp.asarray(x),), (jnp.asarray(v),))[1]
    if kind == "in_memory":
        got_value, got_grad = jax.value_and_grad(f)(jnp.asarray(x))
    else:
        got_value, got_grad = f.value_and_grad(x)
    assert abs(float(got_value) - float(value)) <= 1e-12 * abs(float(value))
    assert relative(got_grad, grad) <= 1e-12
    assert relative(f.hvp(x, v), hv) <= 1e-12


def test_torch_data_loader_of_uneven_batches():
    torch = pytest.importorskip("torch")
    X, y = data()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y)), batch_size=20)
    f = fm.DatasetLoss(cross_entropy, loader, equinox_model())
    assert f.num_batches == 7
    ref = whole_loss(equinox_model())
    x = f.point()
    assert abs(float(f(x)) - float(ref(x))) <= 1e-12 * float(ref(x))
    assert relative(jax.grad(f)(x), jax.grad(ref)(x)) <= 1e-12


def torch_twin(model):
    """The PyTorch network with the weights of the Equinox ``model``, float64."""
    torch = pytest.importorskip("torch")
    from flatminima.torch_adapter import TorchObjective

    net = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.Tanh(), torch.nn.Linear(H, C)).double()
    with torch.no_grad():
        for layer, twin in zip(model.layers, (net[0], net[2])):
            twin.weight.copy_(torch.tensor(np.asarray(layer.weight)))
            twin.bias.copy_(torch.tensor(np.asarray(layer.bias)))
    X, y = data()
    Xt, yt = torch.tensor(X), torch.tensor(y)
    loss = lambda m, a, b: torch.nn.functional.cross_entropy(m(a), b)
    obj = TorchObjective(net, loss, Xt, yt)

    def dense_hessian(x):  # the whole-data loss's Hessian by torch.func, independently
        shapes = [p.shape for p in net.parameters()]
        names = [k for k, _ in net.named_parameters()]

        def flat_loss(v):
            parts = torch.split(v, [int(np.prod(s)) for s in shapes])
            params = {k: p.reshape(s) for k, p, s in zip(names, parts, shapes)}
            return loss(lambda a: torch.func.functional_call(net, params, (a,)), Xt, yt)

        return torch.func.hessian(flat_loss)(torch.tensor(x)).numpy()

    obj.dense_hessian = dense_hessian
    return obj


@pytest.fixture
def one_torch_thread():
    """Tiny networks: one intra-op thread (several stall on a loaded machine); restored after."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_equinox_and_pytorch_twins_agree(one_torch_thread):
    """The same network in Equinox (DatasetLoss over 7 uneven batches), in PyTorch on the
    whole data set at once, and in PyTorch through a DataLoader of the same 7 batches
    (6 x 20 + 10): the same full-data average, variation and top Hessian eigenvalue,
    the latter against the dense Hessian of the whole-data loss."""
    torch = pytest.importorskip("torch")
    from flatminima.torch_adapter import TorchObjective

    model = equinox_model()
    X, y = data()
    f = fm.DatasetLoss(cross_entropy, batches_of(X, y), model)
    twin = torch_twin(model)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y)), batch_size=20)
    streamed = TorchObjective(twin.model, twin.loss_fn, data=loader)
    assert (streamed.num_batches, streamed.num_examples, streamed.n) == (7, N, f.n)
    x = twin.point()
    np.testing.assert_array_equal(x, np.asarray(f.point()))  # same parameter order
    ref_value, ref_grad = jax.value_and_grad(f)(jnp.asarray(x))
    value, grad = streamed.value_and_grad(x)
    assert abs(value - float(ref_value)) <= 1e-12 * float(ref_value)
    assert relative(grad, ref_grad) <= 1e-12
    solver = ProjectedAscent(n_eig=0, max_iter=300)  # the same starts for all objectives
    ours = fm.max_variation(f, f.params, 0.5, solver=solver)
    assert ours.value > 0
    for g in (twin, streamed):
        theirs = fm.max_variation(g, x, 0.5, solver=solver)
        assert abs(ours.value - theirs.value) <= 1e-6 * ours.value
    # top Hessian eigenvalue: all against the dense Hessian of the whole-data loss (torch)
    dense = float(np.linalg.eigvalsh(twin.dense_hessian(x))[-1])
    for g, point in ((f, f.params), (twin, x), (streamed, x)):
        top = fm.sharpness.hessian_eigmax(g, point, method="lanczos", rtol=1e-10).value
        assert abs(top - dense) <= 1e-8 * dense


def test_streamed_and_in_memory_give_the_same_max_variation():
    X, y = data()
    model = equinox_model()
    f = fm.DatasetLoss(cross_entropy, batches_of(X, y), model)
    s = fm.StreamedDatasetLoss(cross_entropy, batches_of(X, y), model)
    solver = ProjectedAscent(n_eig=0, explore_iter=20, max_iter=20)  # one compiled loop
    a = fm.max_variation(f, f.point(), 0.3, solver=solver, norm="linf")
    b = fm.max_variation(s, np.asarray(s.point()), 0.3, solver=solver, norm="linf")
    assert abs(a.value - b.value) <= 1e-9 * a.value


def test_flax_nnx_module_as_it_comes():
    nnx = pytest.importorskip("flax.nnx")
    X, y = data()

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(D, H, rngs=rngs, param_dtype=jnp.float64)
            self.out = nnx.Linear(H, C, rngs=rngs, param_dtype=jnp.float64)

        def __call__(self, x):
            return self.out(jnp.tanh(self.hidden(x)))

    net = Net(nnx.Rngs(0))

    def loss(model, batch):
        logits = model(batch[0])
        return jnp.mean(jax.nn.logsumexp(logits, axis=1)
                        - jnp.take_along_axis(logits, batch[1][:, None], 1)[:, 0])

    f = fm.DatasetLoss(loss, batches_of(X, y), net)
    assert f.n == D * H + H + H * C + C
    assert abs(float(f(net)) - float(loss(net, (X, y)))) <= 1e-12 * float(loss(net, (X, y)))
    _, state = nnx.split(net, nnx.Param)
    grads = nnx.grad(lambda m: loss(m, (X, y)))(net)
    assert relative(ravel_pytree(jax.grad(f)(f.params))[0], ravel_pytree(grads)[0]) <= 1e-12


SHARDED = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import flatminima as fm
    assert len(jax.devices()) == 4
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((103, 5)), rng.standard_normal(103)
    W = {"w1": rng.standard_normal((5, 7)) / 2, "w2": rng.standard_normal(7) / 2}
    loss = lambda p, b: jnp.mean((jnp.tanh(b[0] @ p["w1"]) @ p["w2"] - b[1]) ** 2)
    edges = [0, 16, 32, 48, 64, 80, 96, 103]
    batches = [(X[a:b], y[a:b]) for a, b in zip(edges, edges[1:])]
    v = jnp.asarray(rng.standard_normal(42))
    out = []
    for devices in (jax.devices()[:1], None):
        f = fm.DatasetLoss(loss, batches, W, devices=devices)
        s = fm.StreamedDatasetLoss(loss, batches, W, devices=devices)
        x = f.point()
        value, grad = jax.value_and_grad(f)(x)
        hv = jax.jvp(jax.grad(f), (x,), (v,))[1]
        svalue, sgrad = s.value_and_grad(np.asarray(x))
        starts = jnp.stack([x, x + 0.1 * v, x - 0.1 * v])  # batched, as the ascent evaluates
        values, grads = jax.vmap(jax.value_and_grad(f))(starts)
        out.append([value, grad, hv, f.hvp(x, v), svalue, sgrad, s.hvp(x, v), values, grads])
    worst = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(a))))
                for a, b in zip(*out))
    print(worst)
""")


def test_sharded_across_four_devices_equals_one_device():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    run = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.split()[-1]) <= 1e-12


# --- bad input: one-line errors naming the fix, before any computation ---------------------


def test_empty_data_loader_is_refused():
    with pytest.raises(ValueError, match="batches is empty; pass at least one batch"):
        fm.DatasetLoss(cross_entropy, [], equinox_model())
    with pytest.raises(ValueError, match="batches is empty"):
        fm.StreamedDatasetLoss(cross_entropy, [], equinox_model())


def test_nan_in_a_batch_is_refused():
    X, y = data()
    X = X.copy()
    X[65, 2] = np.nan  # in batch 3
    with pytest.raises(ValueError, match="batch 3 holds NaN or infinite values"):
        fm.DatasetLoss(cross_entropy, batches_of(X, y), equinox_model())
    with pytest.raises(ValueError, match="batch 3 holds NaN"):
        fm.StreamedDatasetLoss(cross_entropy, batches_of(X, y), equinox_model())


def test_loss_that_is_not_a_scalar_is_refused():
    per_example = lambda model, batch: jax.vmap(model)(batch[0])[:, 0]
    with pytest.raises(ValueError, match=r"must return a scalar, got \(20,\); return the mean"):
        fm.DatasetLoss(per_example, batches_of(*data()), equinox_model())


def test_parameter_count_that_does_not_match_x_is_refused():
    f = fm.DatasetLoss(cross_entropy, batches_of(*data()), equinox_model())
    with pytest.raises(ValueError, match="x has 50 parameters but the model has 53"):
        f(jnp.zeros(50))
    with pytest.raises(ValueError, match="x has 50 parameters but the model has 53"):
        fm.max_variation(f, np.zeros(50), 0.1)
    s = fm.StreamedDatasetLoss(cross_entropy, batches_of(*data()), equinox_model())
    with pytest.raises(ValueError, match="x has 50 parameters but the model has 53"):
        s.value_and_grad(np.zeros(50))


def test_one_shot_generator_is_refused_for_streaming():
    gen = (b for b in batches_of(*data()))
    with pytest.raises(TypeError, match="one-shot iterator"):
        fm.StreamedDatasetLoss(cross_entropy, gen, equinox_model())


def test_batch_with_mismatched_leading_sizes_is_refused():
    X, y = data()
    with pytest.raises(ValueError, match="batch 0 has leaves with leading sizes"):
        fm.DatasetLoss(cross_entropy, [(X[:20], y[:19])], equinox_model())


def test_arrays_instead_of_batches_are_refused():
    with pytest.raises(TypeError, match="cut arrays into a list of batches"):
        fm.DatasetLoss(cross_entropy, data()[0], equinox_model())


def test_a_measured_dataset_loss_is_freed_when_deleted():
    """The objective keeps its converted function, which must not refer back to it: the
    data are freed at ``del`` by reference counting, without waiting for the collector."""
    import gc
    import weakref

    X, y = data()
    f = fm.DatasetLoss(cross_entropy, batches_of(X, y), equinox_model())
    fm.sharpness.hessian_eigmax(f, f.point())
    ref = weakref.ref(f)
    gc.disable()
    try:
        del f
        assert ref() is None
    finally:
        gc.enable()
