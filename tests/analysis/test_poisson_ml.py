"""The fit engine's derivatives: the Jacobian it steps with (only the columns of the
parameters in the model are stored) is the derivative of the expected counts, for every IRF
form, number of components and a fitted or fixed t0. A wrong column would still let a fit
"converge", to the wrong place, and with wrong errors."""

from __future__ import annotations

import numpy as np
import pytest

from hbtscope.analysis._poisson_ml import model_and_jacobian
from hbtscope.analysis.decay_model import (
    I_AMP,
    I_BG,
    I_LOGTAU,
    I_T0,
    N_EXP_MAX,
    N_PARAMS,
    make_grid_model,
    make_model,
)

K, DT = 96, 50.0
_IRF = np.exp(-0.5 * ((np.arange(K) + 0.5) * DT - 900.0) ** 2 / 90.0**2)
MODELS = {
    "none": lambda: make_model(None, K, DT, None),
    "gaussian_wrap": lambda: make_model({"gaussian": 80.0}, K, DT, K * DT),
    "array": lambda: make_model(_IRF, K, DT, None),
    "grid_gaussian": lambda: make_grid_model((900.0, 80.0), K, DT, None),
}


def _theta(n_exp: int, t0: float) -> np.ndarray:
    th = np.zeros(N_PARAMS)
    th[I_AMP : I_AMP + n_exp] = [3e3, 2e3, 1e3][:n_exp]
    th[I_LOGTAU : I_LOGTAU + n_exp] = np.log([300.0, 1200.0, 4000.0][:n_exp])
    th[I_T0] = t0
    th[I_BG] = 0.7
    return th


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("n_exp", range(1, N_EXP_MAX + 1))
def test_jacobian_is_the_derivative_of_the_expectation(name, n_exp):
    model = MODELS[name]()
    # t0 is a parameter of the closed forms (the step time of "none" is kept fixed: not smooth)
    need_t0 = model.kind in ("gaussian", "array")
    th = _theta(n_exp, 910.0 if model.kind == "gaussian" else 23.0)
    if model.kind == "none":
        th[I_T0] = 1000.0
    mu, J = model_and_jacobian(th, model, n_exp, need_t0)
    in_model = [I_AMP + i for i in range(n_exp)] + [I_LOGTAU + i for i in range(n_exp)]
    in_model += [I_BG] + ([I_T0] if need_t0 else [])
    for p in range(N_PARAMS):
        if p not in in_model:
            assert np.all(J[:, p] == 0.0), p
            continue
        h = {I_T0: 1e-3 * DT}.get(p, 1e-5 * max(1.0, abs(th[p])))
        up, dn = th.copy(), th.copy()
        up[p] += h
        dn[p] -= h
        fd = (model_and_jacobian(up, model, n_exp, need_t0)[0]
              - model_and_jacobian(dn, model, n_exp, need_t0)[0]) / (2 * h)  # fmt: skip
        # the "array" form's own derivatives are central differences (steps 1e-4 in ln tau,
        # 0.01 bin in t0); the others are closed forms
        tol = 1e-4 if model.kind == "array" else 1e-6
        np.testing.assert_allclose(J[:, p], fd, rtol=tol, atol=tol * np.abs(mu).max())
    assert np.all(mu > 0)
