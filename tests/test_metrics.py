"""Tests for PSNR and MS-SSIM against reference implementations and known properties."""

import numpy as np
import pytest
from scipy import signal
from skimage.metrics import structural_similarity

from jaxlic import metrics
from jaxlic.image_io import sample_image


def _astronaut():
    return sample_image("astronaut")


def _independent_ms_ssim(a, b):
    """Straightforward float64 MS-SSIM: 2-D 'valid' convolution and reshape pooling (even sizes)."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    result = np.ones(a.shape[2])
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    for level, w in enumerate(weights):
        for ch in range(a.shape[2]):
            x, y = a[:, :, ch], b[:, :, ch]
            f = lambda img: signal.convolve2d(img, kernel, mode="valid")  # noqa: E731
            mx, my = f(x), f(y)
            sxx, syy, sxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
            cs = (2 * sxy + c2) / (sxx + syy + c2)
            lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
            term = (lum * cs).mean() if level == 4 else cs.mean()
            result[ch] *= max(term, 0.0) ** w
        h, wd = a.shape[0] // 2, a.shape[1] // 2
        a = a.reshape(h, 2, wd, 2, -1).mean(axis=(1, 3))
        b = b.reshape(h, 2, wd, 2, -1).mean(axis=(1, 3))
    return result.mean()


def test_psnr_known_value_and_identical_images():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 16  # MSE = 256 / 48
    assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(255**2 * 48 / 256))
    assert metrics.psnr(a, a) == float("inf")


def test_single_scale_ssim_matches_skimage():
    a = _astronaut()[:200, :240]
    b = np.clip(a.astype(int) + np.random.default_rng(0).normal(0, 12, a.shape), 0, 255).astype(np.uint8)
    ssim, _ = metrics.ssim_components(a, b)
    reference = structural_similarity(
        a, b, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim.mean() == pytest.approx(reference, abs=1e-9)


def test_ms_ssim_matches_independent_float64_implementation():
    a = _astronaut()
    b = (a // 32) * 32 + 16
    assert metrics.ms_ssim(a, b) == pytest.approx(_independent_ms_ssim(a, b), abs=1e-10)


@pytest.mark.parametrize(
    "name, distort, tf_value",
    [
        # Values computed with tf.image.ssim_multiscale (TensorFlow 2, default arguments,
        # max_val=255); TF computes in float32, hence the tolerance.
        ("astronaut", lambda a: (a // 32) * 32 + 16, 0.9532918930053711),
        ("astronaut", lambda a: np.roll(a, 1, axis=1), 0.9628420472145081),
        ("chelsea", lambda a: (a // 16) * 16 + 8, 0.9819572567939758),  # odd width 451
    ],
)
def test_ms_ssim_matches_tensorflow_reference_values(name, distort, tf_value):
    a = sample_image(name)
    assert metrics.ms_ssim(a, distort(a)) == pytest.approx(tf_value, abs=2e-5)


def test_ms_ssim_identical_is_one_and_decreases_with_noise():
    a = _astronaut()[:176, :192]
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(1)
    values = []
    for sigma in (2, 8, 32):
        noisy = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        values.append(metrics.ms_ssim(a, noisy))
    assert 1.0 > values[0] > values[1] > values[2] > 0.0


def test_ms_ssim_is_scale_invariant_with_data_range():
    a = _astronaut()[:176, :176]
    b = (a // 8) * 8
    assert metrics.ms_ssim(a / 255.0, b / 255.0, data_range=1.0) == pytest.approx(
        metrics.ms_ssim(a, b), abs=1e-9
    )


def test_ms_ssim_refuses_small_images_and_or_nan_variant():
    a = np.zeros((100, 200, 3), np.uint8)
    with pytest.raises(ValueError, match="161"):
        metrics.ms_ssim(a, a)
    assert np.isnan(metrics.ms_ssim_or_nan(a, a))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        metrics.psnr(np.zeros((2, 2, 3)), np.zeros((2, 3, 3)))
