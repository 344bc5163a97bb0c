"""LPIPS (own module, lpips weight layout), CLIP embeddings from save_pretrained folders, Fréchet distance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _eval_util import ALEX, lpips_layout_state, write_tiny_clip
from diffusion.evaluation import feature_metrics as fm
from motion.errors import UserError


def reference_lpips(state: dict[str, torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS written out with torch.nn.functional straight from the lpips-keyed weights."""
    def taps(x):
        x = ((2 * x - 1) - state["scaling_layer.shift"]) / state["scaling_layer.scale"]
        out = []
        for idx, (sl, _, stride, pad) in ALEX.items():
            if idx in (3, 6):
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(F.conv2d(x, state[f"net.slice{sl}.{idx}.weight"], state[f"net.slice{sl}.{idx}.bias"], stride, pad))
            out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out
    total = 0
    for k, (fa, fb) in enumerate(zip(taps(a), taps(b))):
        total = total + ((fa - fb) ** 2 * state[f"lin{k}.model.1.weight"]).sum(1).mean((1, 2))
    return total


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lpips") / "lpips_alex.pth"
    torch.save(lpips_layout_state(), path)
    return path


def images(seed: int, n: int = 2) -> torch.Tensor:
    return torch.rand((n, 3, 64, 64), generator=torch.Generator().manual_seed(seed))


def test_lpips_matches_functional_reference_through_key_mapping(lpips_file):
    model = fm.load_lpips(lpips_file)
    a, b = images(1), images(2)
    with torch.no_grad():
        got = model(a, b)
    np.testing.assert_allclose(got.numpy(), reference_lpips(lpips_layout_state(), a, b).numpy(), rtol=1e-5)
    assert (got > 0).all()


def test_lpips_identity_symmetry_and_linearity(lpips_file, tmp_path):
    model = fm.load_lpips(lpips_file)
    a, b = images(3), images(4)
    with torch.no_grad():
        assert torch.equal(model(a, a), torch.zeros(2))
        torch.testing.assert_close(model(a, b), model(b, a))
        torch.save(lpips_layout_state(lin_scale=2.0), tmp_path / "double.pth")
        torch.testing.assert_close(fm.load_lpips(tmp_path / "double.pth")(a, b), 2 * model(a, b))


def test_lpips_torchvision_layout_loads_the_same(lpips_file, tmp_path):
    state = lpips_layout_state()
    tv = {k.replace(f"net.slice{sl}.", "features."): v for k, v in state.items()
          for sl in range(1, 6) if k.startswith(f"net.slice{sl}.")}
    tv.update({k: v for k, v in state.items() if k.startswith("lin")})
    tv["classifier.1.weight"] = torch.zeros(4, 4)          # torchvision's classifier is ignored
    torch.save(tv, tmp_path / "tv.pth")
    a, b = images(5), images(6)
    with torch.no_grad():
        torch.testing.assert_close(fm.load_lpips(tmp_path / "tv.pth")(a, b), fm.load_lpips(lpips_file)(a, b))


def test_lpips_vgg_layout_uses_torchvision_indices():
    keys = {k.split(".")[1] for k in fm.LPIPS("vgg").state_dict() if k.startswith("features.")}
    assert keys == {str(i) for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)}


def test_lpips_bad_weights_are_user_errors(tmp_path):
    torch.save({"lin0.model.1.weight": torch.ones(1, 64, 1, 1)}, tmp_path / "lin_only.pth")
    with pytest.raises(UserError, match="no backbone weights"):
        fm.load_lpips(tmp_path / "lin_only.pth")
    state = lpips_layout_state()
    del state["lin4.model.1.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(UserError, match="lins.4.weight"):
        fm.load_lpips(tmp_path / "partial.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable weights file"):
        fm.load_lpips(tmp_path / "junk.pth")


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 3))
    mu, sigma = fm.feature_statistics(a)
    assert fm.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)
    # diagonal covariances: |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    m1, m2 = np.array([1.0, 2.0, 0.0]), np.array([0.0, 0.0, 3.0])
    s1, s2 = np.array([4.0, 1.0, 9.0]), np.array([1.0, 1.0, 0.25])
    assert fm.frechet_distance(m1, np.diag(s1), m2, np.diag(s2)) == pytest.approx(5 + 9 + 1 + 0 + 6.25, rel=1e-9)
    # same rotation for both: the eigenvalues play the diagonal's role
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    assert fm.frechet_distance(m1, q @ np.diag(s1) @ q.T, m2, q @ np.diag(s2) @ q.T) == pytest.approx(21.25, rel=1e-8)
    # translated feature sets: covariances equal, distance = |shift|^2
    shift = np.array([0.5, -1.0, 2.0])
    assert fm.frechet_distance_of_features(a, a + shift) == pytest.approx(shift @ shift, rel=1e-6)


@pytest.fixture(scope="module")
def clip_folders(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_clip_embeddings_from_full_and_vision_only_folders(clip_folders):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 40, 48, 3)).astype(np.uint8)
    full = fm.ClipImageEncoder(clip_folders / "full").embed(frames)
    vision = fm.ClipImageEncoder(clip_folders / "vision").embed(frames)
    np.testing.assert_allclose(full, vision, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(fm.clip_image_similarity(full, full), 1.0, atol=1e-6)
    same = fm.clip_frame_consistency(np.repeat(full[:1], 3, axis=0))
    np.testing.assert_allclose(same, 100.0, atol=1e-4)
    cons = fm.clip_frame_consistency(full)
    expected = [100 * float(full[i] @ full[i + 1]) for i in range(2)]
    np.testing.assert_allclose(cons, expected, rtol=1e-6)
    assert (cons < 100).all()


def test_clip_folder_without_processor_is_user_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="preprocessor_config.json"):
        fm.ClipImageEncoder(tmp_path)


def test_torchscript_feature_network_round_trip(tmp_path):
    class Mean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    torch.jit.save(torch.jit.script(Mean()), tmp_path / "net.pt")
    net = fm.load_torchscript(tmp_path / "net.pt")
    frames = [np.full((8, 8, 3), v) for v in (0.1, 0.5)]
    np.testing.assert_allclose(fm.network_features(net, fm.to_tensor(frames), "net"), [[0.1] * 3, [0.5] * 3], atol=1e-7)
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(UserError, match="not a TorchScript module"):
        fm.load_torchscript(tmp_path / "bad.pt")
