r"""A simulated Galaxy Zoo universe whose true volunteer probabilities are known.

Each galaxy gets latent parameters (drawn first, for all galaxies, from one seeded generator):

* morphology: a smooth elliptical (Sersic profile, index 2-5) or a featured disk (exponential
  disk plus a de Vaucouleurs bulge), with axis ratio and position angle;
* disks: inclination (edge-on when the projected axis ratio is small), a bar (strength, length)
  in 40% of disks, and 1-4 logarithmic spiral arms (pitch angle, amplitude);
* a redshift proxy z in [0.02, 0.12], drawn uniformly in volume (p(z) ~ z^2), that sets the
  apparent size (~ 1/z) and dims the surface brightness (~ (1 + z)^-4);
* observing conditions: Gaussian PSF blur, Gaussian sky noise, optional neighbouring stars.

A *survey preset* (:mod:`zoolib.universe.volunteers`; default ``gz2``) sets the image quality (PSF
and sky-noise ranges), the distribution of N and the volunteer model, whose constants were fitted
to that survey's real vote fractions (:mod:`zoolib.universe.calibration`). The "typical volunteer"
answers from what is *visible* (graded, not a step: arms and bars count as far as they are
resolved against the PSF and bright against the sky noise; bars in inclined disks are missed),
plus a galaxy-level ambiguity drawn with the latents. Votes then follow the Galaxy Zoo decision
tree: N volunteers (drawn from the survey's distribution of totals) answer smooth-or-featured (a
multinomial over smooth / featured-or-disk / artifact); those who said featured are asked
disk-edge-on; those who said "not edge-on" are asked bar. So ``k ~ Binomial(N, true_p)`` for
the first question and ``N_bar <= N_edge-on <= N``.

Images are float surface brightness mapped to uint8 with a fixed arcsinh stretch (the same for
every galaxy, so distant galaxies really are fainter), shape (n, size, size, channels).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from zoolib.universe import volunteers
from zoolib.votes.schema import ID_COLUMN

RENDER_CHUNK = 256  # galaxies rendered together; fixed so that results never depend on it
REFERENCE_SIZE = 64  # latent sizes are in pixels of a 64-px image; other sizes scale them
STAR_NEAR_PX = 10.0  # a star this close to the centre (64-px pixels) may get "artifact" votes

# RGB colours of the components when channels == 3 (old stars red, young stars blue)
_RED, _DISK, _BLUE, _WHITE = (1.0, 0.82, 0.62), (0.9, 0.9, 0.92), (0.62, 0.78, 1.0), (1.0, 1.0, 1.0)


def sample_latents(
    n: int,
    rng: np.random.Generator,
    size: int = REFERENCE_SIZE,
    preset: str | volunteers.Preset = volunteers.DEFAULT_PRESET,
) -> pd.DataFrame:
    """Draw the latent parameters of ``n`` galaxies; sizes are in pixels of a ``size`` image.

    The preset sets the image quality (PSF and sky-noise ranges); everything else is the same
    population for every preset.
    """
    survey = volunteers.preset(preset)
    scale = size / REFERENCE_SIZE
    z_lo, z_hi = 0.02, 0.12
    z = (z_lo**3 + rng.random(n) * (z_hi**3 - z_lo**3)) ** (1 / 3)
    featured = rng.random(n) < 0.55
    # apparent sizes: ~ 1/z, lognormal scatter in physical size
    kpc_to_px = 3.0 * (0.05 / z) * scale
    disk_scale = np.exp(rng.normal(np.log(2.5), 0.3, n)) * kpc_to_px
    r_eff = np.exp(rng.normal(np.log(3.0), 0.3, n)) * kpc_to_px
    sersic_n = rng.uniform(2.0, 5.0, n)
    cos_i = rng.random(n)  # isotropic inclinations
    q0 = 0.15  # intrinsic thickness of disks
    disk_q = np.sqrt(cos_i**2 * (1 - q0**2) + q0**2)
    ell_q = rng.uniform(0.5, 1.0, n)
    has_bar = featured & (rng.random(n) < 0.4)
    brightness = np.exp(rng.normal(0.0, 0.25, n)) * (1 + z) ** -4 / (1 + z_lo) ** -4
    frame = pd.DataFrame(
        {
            "morphology": np.where(featured, "featured", "smooth"),
            "redshift": z,
            "position_angle": rng.uniform(0, np.pi, n),
            "axis_ratio": np.where(featured, disk_q, ell_q),
            "inclination_deg": np.where(featured, np.degrees(np.arccos(cos_i)), np.nan),
            "sersic_n": np.where(featured, np.nan, sersic_n),
            "r_eff_px": np.where(featured, np.nan, r_eff),
            "disk_scale_px": np.where(featured, disk_scale, np.nan),
            "bulge_fraction": np.where(featured, rng.uniform(0.05, 0.5, n), np.nan),
            "has_bar": has_bar,
            "bar_strength": np.where(has_bar, rng.uniform(0.3, 1.0, n), 0.0),
            "bar_length_px": np.where(has_bar, rng.uniform(0.8, 1.8, n) * disk_scale, 0.0),
            "bar_angle": rng.uniform(0, np.pi, n),
            "n_arms": np.where(featured, rng.choice([1, 2, 2, 2, 3, 4], n), 0),
            "pitch_deg": np.where(featured, rng.uniform(10, 35, n), np.nan),
            "arm_amplitude": np.where(featured, rng.uniform(0.0, 1.0, n) ** 0.7, 0.0),
            "surface_brightness": brightness,
            "psf_sigma_px": rng.uniform(*survey.psf_sigma_px, n) * scale,
            "sky_noise": rng.uniform(*survey.sky_noise, n),
            "n_stars": rng.choice([0, 0, 0, 0, 1, 2], n),
            "offset_x_px": rng.normal(0, 0.7, n) * scale,
            "offset_y_px": rng.normal(0, 0.7, n) * scale,
        }
    )
    star_r = rng.uniform(4, REFERENCE_SIZE / 2, (n, 2)) * scale  # same field of view
    star_t = rng.uniform(0, 2 * np.pi, (n, 2))
    frame["star1_x_px"], frame["star1_y_px"] = (
        star_r[:, 0] * np.cos(star_t[:, 0]),
        star_r[:, 0] * np.sin(star_t[:, 0]),
    )
    frame["star2_x_px"], frame["star2_y_px"] = (
        star_r[:, 1] * np.cos(star_t[:, 1]),
        star_r[:, 1] * np.sin(star_t[:, 1]),
    )
    frame["star_flux"] = np.exp(rng.normal(np.log(8), 0.8, n))
    frame["edge_on"] = featured & (disk_q < 0.3)
    frame["star_near"] = (frame["n_stars"] > 0) & (star_r[:, 0] < STAR_NEAR_PX * scale)
    for column in volunteers.AMBIGUITY_COLUMNS.values():  # galaxy-level ambiguity, N(0, 1)
        frame[column] = rng.standard_normal(n)
    return frame


def draw_votes(probs: pd.DataFrame, rng: np.random.Generator, total: np.ndarray) -> pd.DataFrame:
    """Volunteer votes through the decision tree, in canonical catalogue columns.

    ``total`` is each galaxy's N for the first question; the later questions' N follow from the
    answers above them.
    """
    pvals = probs[["p_smooth", "p_featured", "p_artifact"]].to_numpy()
    first = rng.multinomial(total, pvals)
    featured = first[:, 1]
    edge_yes = rng.binomial(featured, probs["true_p_disk-edge-on"].to_numpy())
    edge_no = featured - edge_yes
    bar_yes = rng.binomial(edge_no, probs["true_p_bar"].to_numpy())
    return pd.DataFrame(
        {
            "smooth-or-featured_smooth": first[:, 0],
            "smooth-or-featured_featured-or-disk": featured,
            "smooth-or-featured_artifact": first[:, 2],
            "smooth-or-featured_total-votes": total,
            "disk-edge-on_yes": edge_yes,
            "disk-edge-on_no": edge_no,
            "disk-edge-on_total-votes": featured,
            "bar_yes": bar_yes,
            "bar_no": edge_no - bar_yes,
            "bar_total-votes": edge_no,
        },
        index=probs.index,
    ).astype(np.int64)


def _sersic(r, r_e, n):
    """Sersic profile normalised to 1 at r_e: exp(-b_n ((r / r_e)^(1/n) - 1))."""
    b = 2 * n - 1 / 3 + 4 / (405 * n)
    return np.exp(-b * (np.exp(np.log(r / r_e) / n) - 1))


def _blur_matrices(sigma: np.ndarray, size: int) -> np.ndarray:
    """Row-normalised Gaussian blur matrices, (b, size, size): blur = G @ image @ G^T."""
    i = np.arange(size, dtype=np.float32)
    d2 = (i[:, None] - i[None, :]) ** 2
    g = np.exp(-d2[None] / (2 * sigma.reshape(-1, 1, 1) ** 2))
    return g / g.sum(axis=2, keepdims=True)


def _asinh_stretch(x: np.ndarray) -> np.ndarray:
    """Fixed display stretch to uint8: asinh(x / 0.05) / asinh(30), plus a small pedestal."""
    y = x * np.float32(1 / 0.05)
    y = np.sign(y) * np.log(np.abs(y) + np.sqrt(y * y + 1))  # asinh, fast in float32
    return np.clip(y * np.float32(255 / np.arcsinh(30.0)) + 8, 0, 255).astype(np.uint8)


def render(
    lat: pd.DataFrame,
    size: int = REFERENCE_SIZE,
    channels: int = 1,
    seed: int = 0,
    workers: int = 2,
) -> np.ndarray:
    """Render galaxies from their latents: uint8 array (n, size, size, channels).

    Work is split into chunks of ``RENDER_CHUNK`` galaxies rendered on ``workers`` threads;
    each chunk's noise comes from a generator seeded by (seed, chunk start), so the images
    depend only on (latents, size, channels, seed), never on the number of workers.
    """
    from concurrent.futures import ThreadPoolExecutor

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    out = np.empty((len(lat), size, size, channels), dtype=np.uint8)

    def one(start: int) -> None:
        chunk = lat.iloc[start : start + RENDER_CHUNK]
        rng = np.random.default_rng([seed, start])
        out[start : start + len(chunk)] = _render_chunk(chunk, size, channels, rng)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, range(0, len(lat), RENDER_CHUNK)))
    return out


def _featured_light(c: dict, u, v, r):
    """Bulge + bar (red), disk (neutral) and spiral-arm (blue) light of featured galaxies."""
    h = c["disk_scale_px"]
    bulge_f = c["bulge_fraction"]
    disk = np.exp(-r / h)
    theta = np.arctan2(v, u)
    tan_pitch = np.tan(np.radians(c["pitch_deg"]))
    phase = c["n_arms"] * (theta - np.log(r / h + 0.5) / tan_pitch)
    wave = np.maximum(np.cos(phase), 0)
    arms = c["arm_amplitude"] * wave * wave * (r > 0.6 * h)
    q = c["axis_ratio"]
    bulge_r = np.sqrt(u * u + (v * q / np.maximum(q, 0.6)) ** 2) + 1e-3
    bulge = 1.2 * bulge_f * _sersic(bulge_r, 0.25 * h, 4.0)
    ba = c["bar_angle"]
    length = np.maximum(c["bar_length_px"], 1e-3)
    ub = (u * np.cos(ba) + v * np.sin(ba)) / length
    vb = (-u * np.sin(ba) + v * np.cos(ba)) / (0.22 * length)
    ub2 = ub * ub
    bar = 0.8 * c["bar_strength"] * np.exp(-ub2 * ub2 - vb * vb)
    disk_part = (1 - bulge_f) * disk
    return bulge + bar, disk_part * (1 - 0.5 * c["arm_amplitude"]), 2.0 * disk_part * arms


def _render_chunk(lat: pd.DataFrame, size: int, channels: int, rng) -> np.ndarray:
    b = len(lat)
    featured = (lat["morphology"] == "featured").to_numpy()
    numeric = lat.drop(columns="morphology").astype(np.float32)
    grid = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2)
    red, neutral, blue = (np.zeros((b, size, size), np.float32) for _ in range(3))
    for mask in (featured, ~featured):
        if not mask.any():
            continue
        c = {k: vals.to_numpy()[mask][:, None, None] for k, vals in numeric.items()}
        dx = grid[None, None, :] - c["offset_x_px"]
        dy = grid[None, :, None] - c["offset_y_px"]
        pa = c["position_angle"]
        u = dx * np.cos(pa) + dy * np.sin(pa)  # along the major axis
        v = (dy * np.cos(pa) - dx * np.sin(pa)) / c["axis_ratio"]  # deprojected
        r = np.sqrt(u * u + v * v) + np.float32(1e-3)
        if mask is featured:
            red[mask], neutral[mask], blue[mask] = _featured_light(c, u, v, r)
        else:
            red[mask] = 0.15 * _sersic(r, c["r_eff_px"], c["sersic_n"])
    stars = np.zeros((b, size, size), dtype=np.float32)
    for j in (1, 2):
        sx = np.rint(lat[f"star{j}_x_px"].to_numpy() + (size - 1) / 2).astype(int)
        sy = np.rint(lat[f"star{j}_y_px"].to_numpy() + (size - 1) / 2).astype(int)
        ok = (lat["n_stars"].to_numpy() >= j) & (sx >= 0) & (sx < size) & (sy >= 0) & (sy < size)
        stars[np.flatnonzero(ok), sy[ok], sx[ok]] = lat["star_flux"].to_numpy()[ok]
    sb = numeric["surface_brightness"].to_numpy()[:, None, None]
    # sky_noise is per pixel of a 64-px image; a pixel of a smaller image averages more sky
    noise = numeric["sky_noise"].to_numpy()[:, None, None] * np.float32(size / REFERENCE_SIZE)
    blur = _blur_matrices(numeric["psf_sigma_px"].to_numpy(), size)
    blur_t = np.swapaxes(blur, 1, 2)
    bands = []
    for band in range(channels):
        w = [colour[band] if channels == 3 else 1.0 for colour in (_RED, _DISK, _BLUE, _WHITE)]
        light = sb * (red * w[0] + neutral * w[1] + blue * w[2]) + stars * w[3]
        blurred = blur @ light @ blur_t  # Gaussian PSF, no wrap-around at the edges
        bands.append(blurred + rng.standard_normal(blurred.shape, dtype=np.float32) * noise)
    return _asinh_stretch(np.stack(bands, axis=-1))


def simulate_catalog(
    n_galaxies: int,
    size: int = REFERENCE_SIZE,
    seed: int = 0,
    preset: str | volunteers.Preset = volunteers.DEFAULT_PRESET,
    totals: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """The catalogue of :func:`simulate` without rendering images (identical rows)."""
    return _simulate(n_galaxies, size, seed, preset, totals)[1]


def _simulate(n_galaxies, size, seed, preset, totals) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(latents, catalogue): the latents alone are what :func:`render` needs."""
    if n_galaxies < 1:
        raise ValueError(f"n_galaxies must be >= 1, got {n_galaxies!r}")
    survey = volunteers.preset(preset)
    rng = np.random.default_rng(seed)
    latents = sample_latents(n_galaxies, rng, size, survey)
    probs = volunteers.true_probabilities(latents, survey.volunteers)
    recoverable = volunteers.recoverable_probabilities(latents, survey.volunteers)
    values, weights = survey.totals if totals is None else totals
    votes = draw_votes(probs, rng, rng.choice(values, size=n_galaxies, p=weights))
    ids = pd.Series([f"synth-{seed}-{i:07d}" for i in range(n_galaxies)], name=ID_COLUMN)
    per_answer = volunteers.answer_truth(probs)
    return latents, pd.concat([ids, latents, probs, per_answer, recoverable, votes], axis=1)


def simulate(
    n_galaxies: int,
    size: int = REFERENCE_SIZE,
    channels: int = 1,
    seed: int = 0,
    preset: str | volunteers.Preset = volunteers.DEFAULT_PRESET,
    totals: tuple[np.ndarray, np.ndarray] | None = None,
    workers: int = 2,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Simulate a Galaxy Zoo universe: images and a canonical catalogue with the truth.

    Args:
        n_galaxies: how many galaxies.
        size: image side in pixels (latent sizes scale with it: same field of view).
        channels: 1 (greyscale) or 3 (RGB-like bands with redder bulges and bluer arms).
        seed: everything (latents, votes, noise) is a deterministic function of the seed.
        preset: the survey imitated (:func:`zoolib.universe.volunteers.preset`): image quality, the
            distribution of N and the calibrated volunteer model. Default ``"gz2"``.
        totals: (values, probabilities) of N, replacing the preset's.

    Returns:
        images: uint8 (n_galaxies, size, size, channels).
        catalog: one row per galaxy: ``id_str``, every latent parameter, the answer
        probabilities ``p_*`` and ``true_p_<question>`` (the truth: what volunteers see),
        ``true_p_<question>_<answer>`` (every answer's, for tree models),
        ``recoverable_p_<question>`` (what this image can show, see
        :func:`zoolib.universe.volunteers.recoverable_probabilities`), and canonical vote columns.
    """
    latents, catalog = _simulate(n_galaxies, size, seed, preset, totals)
    images = render(latents, size, channels, seed=seed, workers=workers)
    return images, catalog
