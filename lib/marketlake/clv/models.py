"""BG/NBD and Gamma-Gamma (DOMAIN.md, Customer lifetime value): maximum-likelihood fits and predictions in numpy.

Each customer is summarised as in Fader, Hardie and Lee (2005): x repeat purchases (purchase days after the first),
recency t_x (time from the first purchase to the last) and age T (time from the first purchase to the end of the
window), in one time unit (the job uses weeks), and m_x, the mean value of the repeat purchases.

- BG/NBD: while alive, purchases follow a Poisson process whose rate is Gamma(r, alpha) over customers; after each
  purchase the customer drops out with probability p ~ Beta(a, b). Fitted by maximising the log-likelihood of
  (x, t_x, T) over log-parameters (L-BFGS-B from a fixed start, so the same data always gives the same fit).
- Gamma-Gamma: a customer's mean spend per purchase, given x >= 1 repeat purchases, with shape p, and scale
  Gamma(q, v) over customers (spend independent of frequency). Fitted on the customers with x >= 1.
- Predictions: P(alive | x, t_x, T); expected purchases in the next t (the conditional expectation with the Gauss
  hypergeometric function); expected mean spend; and lifetime value over a horizon as the sum over its months of
  the expected purchases that month x expected spend, discounted monthly (the form `lifetimes` uses).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

log = logging.getLogger(__name__)
BOUND = 10.0


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> np.ndarray:
        x, t_x, big_t = _arrays(x, t_x, big_t)
        odds = np.where(
            x > 0,
            self.a
            / np.maximum(self.b + x - 1, 1e-12)
            * np.exp((self.r + x) * np.log((self.alpha + big_t) / (self.alpha + t_x))),
            0.0,
        )
        return 1.0 / (1.0 + odds)

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T]."""
        x, t_x, big_t = _arrays(x, t_x, big_t)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + big_t + t))
        first = (a + b + x - 1) / (a - 1) * (1 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * hyp)
        return first * self.p_alive(x, t_x, big_t)


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    v: float
    log_likelihood: float

    def expected_spend(self, x: np.ndarray, m_x: np.ndarray) -> np.ndarray:
        """E[mean spend per purchase | x, m_x]; a customer without repeat purchases gets the population mean."""
        x, m_x = _arrays(x, m_x)
        known = (self.p * (self.v + x * m_x)) / (self.p * x + self.q - 1)
        return np.where(x > 0, known, self.p * self.v / (self.q - 1))


def _arrays(*values: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(v, dtype=float) for v in values)


def _maximise(log_likelihood: Callable[..., np.ndarray], n: int, *data: np.ndarray) -> tuple[np.ndarray, float]:
    """The n positive parameters maximising the summed log-likelihood of data, and that maximum: L-BFGS-B on their
    logs from 1.0, within e^-10..e^10. A parameter ending at a bound (the likelihood rises towards 0 or infinity, as
    a rate that does not vary between customers makes the Gamma's shape and scale do) is logged."""
    rows = len(data[0])

    def loss(log_params: np.ndarray) -> float:
        return -float(log_likelihood(np.exp(log_params), *data).sum()) / rows

    options = {"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9}
    found = minimize(loss, np.zeros(n), method="L-BFGS-B", bounds=[(-BOUND, BOUND)] * n, options=options)
    if np.any(np.abs(found.x) > BOUND - 0.5):
        log.warning("%s: a parameter ran to the edge of the search (%s)", log_likelihood.__name__, np.exp(found.x))
    return np.exp(found.x), -float(found.fun) * rows


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> np.ndarray:
    """Each customer's log-likelihood under BG/NBD (r, alpha, a, b)."""
    r, alpha, a, b = params
    base = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    stay = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + big_t)
    drop = np.where(
        x > 0,
        betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return base + np.logaddexp(stay, drop)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> BgNbd:
    x, t_x, big_t = _arrays(x, t_x, big_t)
    if len(x) == 0 or not (x > 0).any():
        raise ValueError("BG/NBD needs customers with repeat purchases")

    (r, alpha, a, b), best = _maximise(bgnbd_log_likelihood, 4, x, t_x, big_t)
    return BgNbd(float(r), float(alpha), float(a), float(b), best)


def gamma_gamma_log_likelihood(params: np.ndarray, x: np.ndarray, m_x: np.ndarray) -> np.ndarray:
    p, q, v = params
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m_x)
        + p * x * np.log(x)
        - (p * x + q) * np.log(v + x * m_x)
    )


def fit_gamma_gamma(x: np.ndarray, m_x: np.ndarray) -> GammaGamma:
    """Fitted on the customers with x >= 1 repeat purchases and a positive mean spend."""
    x, m_x = _arrays(x, m_x)
    keep = (x > 0) & (m_x > 0)
    x, m_x = x[keep], m_x[keep]
    if len(x) < 2:
        raise ValueError("Gamma-Gamma needs two or more customers with repeat purchases")

    (p, q, v), best = _maximise(gamma_gamma_log_likelihood, 3, x, m_x)
    return GammaGamma(float(p), float(q), float(v), best)


def lifetime_value(
    bg: BgNbd,
    gg: GammaGamma,
    x: np.ndarray,
    t_x: np.ndarray,
    big_t: np.ndarray,
    m_x: np.ndarray,
    months: int,
    unit_days: float,
    monthly_discount: float,
) -> np.ndarray:
    """Value over `months` months: per month, the expected purchases in it x expected spend / (1 + discount)^month
    (a month is 365/12 days; times are in units of unit_days)."""
    spend = gg.expected_spend(x, m_x)
    value = np.zeros(len(np.asarray(x)))
    before = np.zeros_like(value)
    for month in range(1, months + 1):
        upto = bg.expected_purchases(month * 365 / 12 / unit_days, x, t_x, big_t)
        value += (upto - before) * spend / (1 + monthly_discount) ** month
        before = upto
    return value
