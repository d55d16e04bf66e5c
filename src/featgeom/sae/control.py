"""L0 controller: adapt a sparsity coefficient so that the SAE's L0 settles at a target.

Proportional-integral control in log space on a smoothed L0 (per step, batch L0 l_t):
    m_t = (1 - beta) m_{t-1} + beta l_t           (EMA of L0, beta = 0.05)
    e_t = log(m_t / target)                       (clipped to [-1, 1])
    I_t = I_{t-1} + gain * e_t
    c_t = c_0 * exp(I_t + proportional * e_t)
The integral term removes the steady-state error; the proportional term reacts at once, which
damps the overshoot caused by the lag between a coefficient change and the SAE's response.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class L0Controller:
    """PI controller of a sparsity coefficient (see module docstring)."""

    target: float
    initial: float
    gain: float
    proportional: float = 1.0
    beta: float = 0.05
    smoothed: float | None = None
    integral: float = 0.0
    error: float = 0.0

    @property
    def coefficient(self) -> float:
        return self.initial * math.exp(self.integral + self.proportional * self.error)

    def update(self, l0: float) -> float:
        """Feed the batch's mean L0; return the new coefficient."""
        self.smoothed = l0 if self.smoothed is None else (1 - self.beta) * self.smoothed + self.beta * l0
        self.error = max(-1.0, min(1.0, math.log(max(self.smoothed, 1e-3) / self.target)))
        self.integral += self.gain * self.error
        return self.coefficient

    def state(self) -> dict[str, float | None]:
        return {"smoothed": self.smoothed, "integral": self.integral, "error": self.error}

    def set_state(self, state: dict[str, float | None]) -> None:
        self.smoothed = state["smoothed"]
        self.integral = float(state["integral"])  # type: ignore[arg-type]
        self.error = float(state["error"])  # type: ignore[arg-type]
