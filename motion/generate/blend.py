"""Smooth transitions between primitives: sequential crossfades of scalar signals and rotations.

Primitive k is active on [start_k, start_k + duration_k). Around each boundary b the blend weight
of the next primitive rises with a smoothstep over [b - w/2, b + w/2]. Because the smoothstep is
point-symmetric about b, a crossfaded piecewise-constant *rate* (speed, yaw rate) integrates to the
same total as the unblended one: a 90 degree turn stays exactly 90 degrees.
"""

from __future__ import annotations

import numpy as np

from motion.rotations import quat_slerp

TRANSITION = 0.6  # seconds of crossfade between primitives (shortened for very short primitives)


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def transition_weights(t: np.ndarray, starts: list[float], durations: list[float]) -> list[np.ndarray]:
    """Per boundary between primitive k-1 and k, the weight (T,) of primitive k."""
    weights = []
    for k in range(1, len(starts)):
        width = min(TRANSITION, durations[k - 1], durations[k])
        weights.append(smoothstep((t - starts[k] + width / 2) / width))
    return weights


def crossfade(values: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
    """Blend per-primitive arrays (T, ...) linearly, boundary after boundary."""
    out = values[0]
    for value, w in zip(values[1:], weights):
        w = w.reshape(w.shape + (1,) * (value.ndim - 1))
        out = out * (1.0 - w) + value * w
    return out


def crossfade_quats(values: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
    """Blend per-primitive quaternions (T, J, 4) by slerp, boundary after boundary."""
    out = values[0]
    for value, w in zip(values[1:], weights):
        active = w > 0
        if np.any(active):
            out = out.copy()
            out[active] = quat_slerp(out[active], value[active], w[active][:, None, None])
    return out


def integrate(rate: np.ndarray, fps: float) -> np.ndarray:
    """Cumulative trapezoid integral along axis 0, starting at 0."""
    out = np.zeros_like(rate)
    out[1:] = np.cumsum(0.5 * (rate[1:] + rate[:-1]), axis=0) / fps
    return out
