"""Middlebury flow colours: wheel layout and the directions the standard wheel gives."""

from __future__ import annotations

import numpy as np

from render.flowviz import colour_wheel, flow_magnitude_max, flow_to_colour


def test_wheel_layout():
    w = colour_wheel()
    assert w.shape == (55, 3)
    # segment starts: red, yellow, green, cyan, blue, magenta (Baker et al. 2007)
    for start, rgb in zip((0, 15, 21, 25, 36, 49), ((255, 0, 0), (255, 255, 0), (0, 255, 0), (0, 255, 255),
                                                    (0, 0, 255), (255, 0, 255))):
        assert tuple(w[start]) == rgb
    assert tuple(w[7]) == (255, np.floor(255 * 7 / 15), 0)


def _colour_of(dx, dy):
    flow = np.zeros((1, 2, 2))
    flow[0, 0] = [dx, dy]
    flow[0, 1] = [0, 0]
    return flow_to_colour(flow, max_radius=np.hypot(dx, dy))[0]


def test_directions():
    right, left = _colour_of(3, 0)[0], _colour_of(-3, 0)[0]
    down, up = _colour_of(0, 3)[0], _colour_of(0, -3)[0]
    assert tuple(right) == (255, 0, 0)                                   # rightward: red
    assert left[0] == 0 and left[1] > 150 and left[2] == 255             # leftward: cyan-blue
    assert down[0] == 255 and 100 < down[1] < 255 and down[2] == 0       # downward (y down): yellow
    assert up[2] == 255 and up[1] == 0 and 0 < up[0] < 128               # upward: blue-violet
    assert tuple(_colour_of(3, 0)[1]) == (255, 255, 255)                 # zero flow: white


def test_saturation_grows_with_magnitude_and_invalid_is_black():
    flow = np.array([[[1, 0], [2, 0], [4, 0], [8, 0], [np.nan, 0], [1e10, 0]]], float)
    img = flow_to_colour(flow, max_radius=4)[0]
    assert img[0, 1] > img[1, 1] > img[2, 1] == 0                          # green falls toward pure red
    assert tuple(img[3]) == (191, 0, 0)                                  # beyond max: 75% red
    assert not img[4].any() and not img[5].any()
    assert flow_magnitude_max(flow) == 8
