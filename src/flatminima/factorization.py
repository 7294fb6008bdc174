"""Matrix factorization and deep linear networks (SPEC section 9).

``f(X, Y) = 1/2 ||X Y' - M||_F^2`` with ``X`` m-by-k, ``Y`` n-by-k. Everything uses
matrix products: Hessian-vector products come from JAX on the structured loss, the top
Hessian eigenvalue from Lanczos, balancing from a k-by-k SVD, so no
``(m + n) k``-square matrix is ever formed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from ._hessian import NOISE_EPS_FACTOR, HessianOperator, lanczos_top
from ._objective import as_objective, check_scalar
from ._ode import FlowTrajectory, GradientField, integrate
from ._report import result_type
from ._x64 import float64_methods


def _check_matrix(M: Any, name: str = "M") -> np.ndarray:
    M = np.asarray(M, dtype=float)
    if M.ndim != 2:
        raise ValueError(f"{name} must be a matrix, got shape {M.shape}.")
    if not np.all(np.isfinite(M)):
        raise ValueError(f"{name} contains NaN or infinite entries; pass a finite matrix.")
    return M


@result_type()
@dataclass(frozen=True)
class BalanceResult:
    """``X, Y`` balanced (``imbalance`` = ``||X'X - Y'Y||_F`` at the end), with the loss
    before and after (equal for the exact transform and the flow) and the method.
    ``converged`` and ``reason``: whether the balancing flow reached its steady state and
    why it stopped (the exact method: True); ``flow``: its :class:`FlowTrajectory`."""

    X: np.ndarray
    Y: np.ndarray
    imbalance: float
    loss_before: float
    loss_after: float
    method: str
    converged: bool = True
    reason: str = "exact: refactored through the SVD of the k-by-k core"
    flow: FlowTrajectory | None = None


@result_type()
@dataclass(frozen=True)
class LayerBalanceResult:
    """Weights after the balancing flow of a deep linear network, in the structure passed
    in, with the imbalance at the end, the loss before and after (equal along the exact
    flow), whether the flow reached its steady state and why it stopped, and the flow."""

    weights: list
    imbalance: float
    loss_before: float
    loss_after: float
    converged: bool
    reason: str
    flow: FlowTrajectory


def _factor_imbalance(p: dict) -> jax.Array:
    """``1/4 ||X'X - Y'Y||_F^2``; its gradient flow is ``X' = -X Q, Y' = Y Q``."""
    Q = p["X"].T @ p["X"] - p["Y"].T @ p["Y"]
    return 0.25 * jnp.sum(Q**2)


def _layer_imbalance(Ws: list) -> jax.Array:
    """``1/2 sum_j ||W_{j+1}'W_{j+1} - W_j W_j'||_F^2``, a function of the conserved
    quantities of a deep linear network."""
    return 0.5 * sum(jnp.sum((Ws[j + 1].T @ Ws[j + 1] - Ws[j] @ Ws[j].T) ** 2)
                     for j in range(len(Ws) - 1))


def _balancing_flow(potential, point, t1, steady_state, n_save=2, max_steps=100_000):
    """The gradient flow of ``potential`` (module-level, so repeated calls reuse the
    compiled solver), to its steady state or to ``t1``."""
    obj, flat = as_objective(potential, point, name="potential")
    return integrate(GradientField(obj.fun), obj.fun, flat, t1, unravel=obj.unravel,
                     n_save=n_save, rtol=1e-12, atol=1e-14, max_steps=max_steps,
                     steady_state=steady_state, name="balancing flow")


def _structured_eigmax(objective, point, rtol, seed) -> float:
    """Top Hessian eigenvalue by the library's restarted Lanczos (breakdowns handled, the
    value checked by its residual) on the compiled structured Hessian-vector product."""
    flat, unravel = jax.flatten_util.ravel_pytree(point)
    grad = jax.grad(lambda v: objective(unravel(v)))
    hvp = jax.jit(lambda v: jax.jvp(grad, (flat,), (v,))[1])
    noise = NOISE_EPS_FACTOR * float(jnp.finfo(flat.dtype).eps)
    return lanczos_top(HessianOperator(hvp, flat.size, noise), rtol=rtol, seed=seed).value


@float64_methods("objective")
class MatrixFactorization:
    """``f(X, Y) = 1/2 ||X Y' - M||_F^2`` with inner dimension ``rank``.

    >>> mf = MatrixFactorization(np.diag([3.0, 1.0]), 2)
    >>> X, Y = mf.global_minimizer()
    >>> round(mf.loss(X, Y), 12), round(mf.hessian_eigmax(X, Y), 8)  # 2 sigma_1(M)
    (0.0, 6.0)
    """

    def __init__(self, M: Any, rank: int):
        self.M = _check_matrix(M)
        self.m, self.n = self.M.shape
        if not isinstance(rank, (int, np.integer)) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}.")
        if rank > min(self.m, self.n):
            raise ValueError(f"rank = {rank} exceeds min(m, n) = {min(self.m, self.n)}; pass "
                             "rank <= min(m, n).")
        self.k = int(rank)
        self.U, self.s, self.Vt = np.linalg.svd(self.M, full_matrices=False)
        self._Mj = jnp.asarray(self.M)

    # -- the loss as a function of a pytree, for the generic machinery -------------------
    def objective(self, p: dict) -> jax.Array:
        """``f`` as a function of ``{"X": X, "Y": Y}`` (for max_variation, compare, ...)."""
        return 0.5 * jnp.sum((p["X"] @ p["Y"].T - self._Mj) ** 2)

    def point(self, X: Any, Y: Any) -> dict:
        X, Y = _check_matrix(X, "X"), _check_matrix(Y, "Y")
        if X.shape != (self.m, self.k) or Y.shape != (self.n, self.k):
            raise ValueError(f"X must be {self.m}x{self.k} and Y {self.n}x{self.k}; got "
                             f"{X.shape} and {Y.shape}.")
        return {"X": jnp.asarray(X), "Y": jnp.asarray(Y)}

    def loss(self, X: Any, Y: Any) -> float:
        return float(self.objective(self.point(X, Y)))

    def gradient(self, X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(R Y, R' X)`` with ``R = X Y' - M``."""
        p = self.point(X, Y)
        R = p["X"] @ p["Y"].T - self._Mj
        return np.asarray(R @ p["Y"]), np.asarray(R.T @ p["X"])

    def min_loss(self) -> float:
        """``1/2 sum_{i > k} sigma_i(M)^2`` (Eckart-Young)."""
        return 0.5 * float(np.sum(self.s[self.k:] ** 2))

    def global_minimizer(self, G: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``X = U_k S_k^{1/2} G``, ``Y = V_k S_k^{1/2} G^{-T}`` (``G`` invertible, default I:
        balanced)."""
        G = np.eye(self.k) if G is None else _check_matrix(G, "G")
        if G.shape != (self.k, self.k):
            raise ValueError(f"G must be {self.k}x{self.k}, got {G.shape}.")
        if np.linalg.cond(G) > 1e12:
            raise ValueError("G is singular (or nearly); pass an invertible matrix.")
        root = np.sqrt(self.s[: self.k])
        X = (self.U[:, : self.k] * root) @ G
        Y = (self.Vt[: self.k].T * root) @ np.linalg.inv(G).T
        return X, Y

    def imbalance(self, X: Any, Y: Any) -> float:
        p = self.point(X, Y)
        return float(jnp.linalg.norm(p["X"].T @ p["X"] - p["Y"].T @ p["Y"]))

    def is_balanced(self, X: Any, Y: Any, tol: float = 1e-8) -> bool:
        scale = max(1.0, float(np.linalg.norm(X) ** 2 + np.linalg.norm(Y) ** 2))
        return self.imbalance(X, Y) <= tol * scale

    def balance(self, X: Any, Y: Any, *, method: str = "auto", t1: float = 1e4,
                steady_state: float = 1e-10) -> BalanceResult:
        """Move ``(X, Y)`` to a balanced point with the same product ``X Y'``.

        ``method="exact"``: the product ``Z = X Y' = Qx (Rx Ry') Qy'`` is refactored
        through the SVD of the k-by-k core, ``Z = U S V'``, as ``(U S^{1/2} O, V S^{1/2} O)``
        with ``O`` the orthogonal matrix closest to the original factor (Procrustes); needs
        ``rank Z = k``. ``method="flow"``: the flattening flow ``X' = -X Q, Y' = Y Q``,
        ``Q = X'X - Y'Y`` (SPEC section 9), run to its steady state (the stop rule of
        :func:`~flatminima.flows.gradient_flow` with tolerance ``steady_state``) but not
        past ``t1``; stiff flows (large imbalance) switch to an implicit solver by
        themselves. A flow that stops short warns and says why in ``reason``.
        ``"auto"``: exact when the product has rank k, else the flow.

        >>> mf = MatrixFactorization(np.diag([3.0, 1.0]), 2)
        >>> X, Y = mf.global_minimizer(np.diag([10.0, 1.0]))
        >>> res = mf.balance(X, Y, method="flow")
        >>> res.converged, res.imbalance < 1e-9
        (True, True)
        """
        p = self.point(X, Y)
        X, Y = np.asarray(p["X"]), np.asarray(p["Y"])
        if method not in ("auto", "exact", "flow"):
            raise ValueError(f"method must be 'auto', 'exact' or 'flow', got {method!r}.")
        before = self.loss(X, Y)
        Qx, Rx = np.linalg.qr(X)
        Qy, Ry = np.linalg.qr(Y)
        u, s, vt = np.linalg.svd(Rx @ Ry.T)
        full_rank = s[-1] > 1e-10 * s[0]
        if method == "exact" or (method == "auto" and full_rank):
            if not full_rank:
                raise ValueError("X Y' has rank < k: use method='flow'.")
            Xb = (Qx @ u) * np.sqrt(s)
            Yb = (Qy @ vt.T) * np.sqrt(s)
            w, _, zt = np.linalg.svd(Xb.T @ X)  # Procrustes: O closest to Xb^+ X
            rotation = w @ zt
            Xb, Yb = Xb @ rotation, Yb @ rotation
            return BalanceResult(Xb, Yb, self.imbalance(Xb, Yb), before, self.loss(Xb, Yb),
                                 "exact")
        flow = _balancing_flow(_factor_imbalance, p, check_scalar(t1, "t1", positive=True),
                               check_scalar(steady_state, "steady_state", positive=True))
        end = flow.point(-1)
        return BalanceResult(end["X"], end["Y"], self.imbalance(end["X"], end["Y"]), before,
                             self.loss(end["X"], end["Y"]), "flow", flow.converged,
                             flow.reason, flow)

    def balance_path(self, X: Any, Y: Any, t1: float, n_save: int = 50, max_steps: int = 100_000):
        """The flattening flow ``X' = -X Q``, ``Y' = Y Q``, ``Q = X'X - Y'Y`` (the gradient
        flow of ``1/4 ||X'X - Y'Y||_F^2``), saved at ``n_save`` times in ``[0, t1]``.
        Returns ``(times, Xs, Ys)``; the product ``X Y'`` is invariant. Raises
        ``RuntimeError`` (saying why) when the integration stops before ``t1``."""
        flow = _balancing_flow(_factor_imbalance, self.point(X, Y),
                               check_scalar(t1, "t1", positive=True), None, n_save, max_steps)
        if not flow.success:
            raise RuntimeError(flow.reason)
        path = flow.tree_points
        return flow.times, path["X"], path["Y"]

    def hessian_eigmax_closed_form(self, X: Any, Y: Any) -> float:
        """``sigma_1(X)^2 + sigma_1(Y)^2``: the top Hessian eigenvalue at an exact fit."""
        return float(np.linalg.norm(X, 2) ** 2 + np.linalg.norm(Y, 2) ** 2)

    def hessian_trace(self, X: Any, Y: Any) -> float:
        """``n ||X||_F^2 + m ||Y||_F^2`` (exact at every point: the residual does not enter
        the diagonal)."""
        return float(self.n * np.sum(np.asarray(X) ** 2) + self.m * np.sum(np.asarray(Y) ** 2))

    def hessian_eigmax(self, X: Any, Y: Any, *, rtol: float = 1e-10, seed: int = 0) -> float:
        """Top Hessian eigenvalue by Lanczos on structured Hessian-vector products,
        restarted until the Ritz residual is below ``rtol`` relative."""
        return _structured_eigmax(self.objective, self.point(X, Y), rtol, seed)

    def max_variation(self, X: Any, Y: Any, r: float, **kwargs):
        """``V((X, Y), r)`` by the library's solver on the structured loss."""
        from ._variation import max_variation

        return max_variation(self.objective, self.point(X, Y), r, **kwargs)


@float64_methods("objective")
class DeepLinearNetwork:
    """``f(W_1, ..., W_L) = 1/2 ||W_L ... W_1 - M||_F^2`` with layer widths
    ``widths = (d_0 = n, d_1, ..., d_L = m)``; conserved ``W_{j+1}'W_{j+1} - W_j W_j'``.

    >>> net = DeepLinearNetwork(np.diag([4.0, 1.0]), (2, 2, 2, 2))
    >>> Ws = net.balanced_minimizer()
    >>> round(net.loss(Ws), 12), round(net.imbalance(Ws), 12)
    (0.0, 0.0)
    """

    def __init__(self, M: Any, widths: Any):
        self.M = _check_matrix(M)
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or widths[0] != self.M.shape[1] or widths[-1] != self.M.shape[0]:
            raise ValueError(f"widths must start with n = {self.M.shape[1]} and end with m = "
                             f"{self.M.shape[0]}; got {widths}.")
        self.widths = widths
        self.L = len(widths) - 1
        self._Mj = jnp.asarray(self.M)

    def objective(self, Ws: list) -> jax.Array:
        P = Ws[0]
        for W in Ws[1:]:
            P = W @ P
        return 0.5 * jnp.sum((P - self._Mj) ** 2)

    def _check(self, Ws):
        Ws = [jnp.asarray(_check_matrix(W, f"W_{j + 1}")) for j, W in enumerate(Ws)]
        shapes = [(self.widths[j + 1], self.widths[j]) for j in range(self.L)]
        if [tuple(W.shape) for W in Ws] != shapes:
            raise ValueError(f"layer shapes must be {shapes}; got {[W.shape for W in Ws]}.")
        return Ws

    def loss(self, Ws: list) -> float:
        return float(self.objective(self._check(Ws)))

    def conserved(self, Ws: list) -> list:
        Ws = self._check(Ws)
        return [np.asarray(Ws[j + 1].T @ Ws[j + 1] - Ws[j] @ Ws[j].T) for j in range(self.L - 1)]

    def imbalance(self, Ws: list) -> float:
        return float(np.sqrt(sum(np.sum(D**2) for D in self.conserved(Ws))))

    def balanced_minimizer(self) -> list:
        """``W_1 = S^{1/L} V'``, ``W_j = S^{1/L}``, ``W_L = U S^{1/L}`` with the top
        ``h = min(hidden widths)`` singular triplets (zero-padded to the widths)."""
        h = min(self.widths[1:-1]) if self.L > 1 else min(self.widths)
        U, s, Vt = np.linalg.svd(self.M, full_matrices=False)
        h = min(h, s.size)
        root = s[:h] ** (1.0 / self.L)
        Ws = []
        for j in range(self.L):
            W = np.zeros((self.widths[j + 1], self.widths[j]))
            if j == 0:
                W[:h] = root[:, None] * Vt[:h]
            elif j == self.L - 1:
                W[:, :h] = U[:, :h] * root
            else:
                W[:h, :h] = np.diag(root)
            Ws.append(W)
        return Ws

    def gradient(self, Ws: list) -> list:
        return [np.asarray(g) for g in jax.grad(self.objective)(self._check(Ws))]

    def is_balanced(self, Ws: list, tol: float = 1e-8) -> bool:
        scale = max(1.0, sum(float(np.sum(np.asarray(W) ** 2)) for W in Ws))
        return self.imbalance(Ws) <= tol * scale

    def max_variation(self, Ws: list, r: float, **kwargs):
        """``V(W, r)`` by the library's solver on the structured loss."""
        from ._variation import max_variation

        return max_variation(self.objective, self._check(Ws), r, **kwargs)

    def balance(self, Ws: list, *, t1: float = 1e4, steady_state: float = 1e-10
                ) -> LayerBalanceResult:
        """The flattening flow of ``1/2 sum_j ||W_{j+1}'W_{j+1} - W_j W_j'||_F^2`` (a
        function of conserved quantities, so the loss stays constant along it), run to its
        steady state (tolerance ``steady_state``, as in
        :func:`~flatminima.flows.gradient_flow`) but not past ``t1``. A flow that stops
        short warns and says why in ``reason``."""
        Ws = self._check(Ws)
        flow = _balancing_flow(_layer_imbalance, Ws, check_scalar(t1, "t1", positive=True),
                               check_scalar(steady_state, "steady_state", positive=True))
        end = [np.asarray(W) for W in flow.point(-1)]
        return LayerBalanceResult(end, self.imbalance(end), self.loss(Ws), self.loss(end),
                                  flow.converged, flow.reason, flow)

    def hessian_eigmax(self, Ws: list, *, rtol: float = 1e-10, seed: int = 0) -> float:
        """Top Hessian eigenvalue by restarted Lanczos (see MatrixFactorization)."""
        return _structured_eigmax(self.objective, self._check(Ws), rtol, seed)
