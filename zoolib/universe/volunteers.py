r"""The simulated volunteers: from what a galaxy image shows to a typical volunteer's answers.

A galaxy's *visibility scores* (each in [0, 1], from its latent parameters, see
:func:`visibility`) say how plainly the image shows the galaxy at all (clarity :math:`c`), its
features, its disk's outline and a bar. A typical volunteer's answer probabilities are graded
functions of those scores plus a galaxy-level *ambiguity* :math:`\epsilon_q \sim N(0, 1)` per
question (a latent of the galaxy, so the same galaxy is equally ambiguous at every image size):

.. math::

    \operatorname{logit} p_\text{featured} &= c\,S + (1 - c)\,u + s_1\epsilon_1,\quad
        S = a_\text{disk} + b\,V_\text{features}\ \text{(disks)},\quad
        S = a_\text{ell} + c_f\,(1 - q)\ \text{(ellipticals)}\\
    \operatorname{logit} p_\text{artifact} &= a_\text{art} + d\,[\text{star near the centre}]\\
    \operatorname{logit} p_\text{edge-on} &= e_0 + e_1 V_\text{outline}
        \sigma\!\left(\tfrac{q_e - q}{w_e}\right) + s_2\epsilon_2
        \ \text{(disks)},\qquad e_0 - \Delta_e + f_e (1 - q) + s_2\epsilon_2\ \text{(ell.)}\\
    \operatorname{logit} p_\text{bar} &= g_0 + g_1 V_\text{bar} + s_3\epsilon_3
        \ \text{(disks)},\qquad g_0 - \Delta_g + s_3\epsilon_3\ \text{(ellipticals)}

and :math:`p_\text{smooth} = (1 - p_\text{artifact})(1 - p_\text{featured})`; :math:`u` is the
answer to a galaxy nobody can make out. :math:`\Delta_e, \Delta_g \ge 0` keep *round*
ellipticals no more edge-on or barred than a disk that shows nothing; elongated ellipticals
("cigar-shaped") can get edge-on votes through :math:`f_e`. The constants
(:class:`VolunteerModel`) are fitted per survey preset to the real vote-fraction distributions
by :mod:`zoolib.universe.calibration` and recorded in ``zoolib/universe/presets.json``.

The ambiguity is not drawn in the image, so no model of the image can predict it.
:func:`recoverable_probabilities` approximates the part of the truth an image of a given size
can show: the expectation over :math:`\epsilon` (Gauss-Hermite quadrature, 160 nodes: within
1e-11 of scipy.integrate.quad for ambiguity scales up to 3) with resolution judged at that
image's pixel scale (see :func:`effective_psf`). Without the pixel term it is exact: the best
prediction of ``true_p`` from all the latents. The pixel term is a rule of thumb, not the
conditional expectation given the image: a model may use proxies (size, brightness) to do
better than it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

PRESETS_FILE = Path(__file__).with_name("presets.json")
DEFAULT_PRESET = "gz2"
DETECTION_SNR = 24.0  # surface brightness / sky noise at which half of what is there is seen
PIXEL_SIGMA = 0.5  # a pixel blurs like a Gaussian of this sigma (in pixels): see effective_psf
AMBIGUITY_COLUMNS = {
    "smooth-or-featured": "ambiguity_smooth-or-featured",
    "disk-edge-on": "ambiguity_disk-edge-on",
    "bar": "ambiguity_bar",
}
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(160)  # E[f(e)], e ~ N(0, 1)


@dataclass(frozen=True)
class VolunteerModel:
    """Constants of the volunteer model (logit scale); see the module docstring."""

    feat_disk: float = -1.5  # a_disk: disks whose features are invisible
    feat_slope: float = 4.0  # b: per unit of feature visibility
    feat_ell: float = -3.0  # a_ell: ellipticals
    feat_flat: float = 1.5  # c: flattened ellipticals look like disks
    feat_blur: float = -1.0  # u: a galaxy too small or faint to make out (clarity 0)
    art_base: float = -3.0  # a_art
    art_star: float = 1.5  # d: a bright star near the centre
    amb_smooth: float = 0.8  # s_1
    edge_base: float = -3.5  # e_0
    edge_slope: float = 6.0  # e_1
    edge_q: float = 0.25  # q_e: axis ratio at which a disk looks half edge-on
    edge_width: float = 0.05  # w_e: how gradually (in axis ratio) a disk turns edge-on
    edge_ell_below: float = 0.5  # Delta_e >= 0: round ellipticals look edge-on less than any disk
    edge_flat: float = 1.0  # f_e: flattened ellipticals look more edge-on
    amb_edge: float = 0.8  # s_2
    bar_base: float = -3.0  # g_0
    bar_slope: float = 5.0  # g_1
    bar_ell_below: float = 1.0  # g_0 - g_ell >= 0: ellipticals look barred less than any disk
    amb_bar: float = 0.8  # s_3

    def replace(self, **changes) -> VolunteerModel:
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown volunteer-model constants {sorted(unknown)}")
        return VolunteerModel(**{**asdict(self), **changes})


@dataclass(frozen=True)
class Preset:
    """A survey the simulation imitates: image quality, vote totals and fitted volunteers."""

    name: str
    description: str
    psf_sigma_px: tuple[float, float]  # uniform range, pixels of a 64-px image
    sky_noise: tuple[float, float]  # uniform range, surface-brightness units
    n_values: np.ndarray  # possible N for the first question
    n_probs: np.ndarray  # their probabilities
    volunteers: VolunteerModel
    calibration: dict  # how the constants were fitted and the distances reached

    @property
    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        return self.n_values, self.n_probs


def load_presets(path: Path | None = None) -> dict[str, Preset]:
    """All presets in ``zoolib/universe/presets.json`` (written by ``python -m zoolib
    calibrate``)."""
    path = Path(path or PRESETS_FILE)
    raw = json.loads(path.read_text())
    out = {}
    for name, p in raw.items():
        counts = np.asarray(p["n_totals"]["counts"], dtype=np.float64)
        out[name] = Preset(
            name=name,
            description=p["description"],
            psf_sigma_px=tuple(p["psf_sigma_px"]),
            sky_noise=tuple(p["sky_noise"]),
            n_values=np.asarray(p["n_totals"]["values"], dtype=np.int64),
            n_probs=counts / counts.sum(),
            volunteers=_volunteer_model(name, p["volunteers"], path),
            calibration=p.get("calibration", {}),
        )
    return out


def _volunteer_model(name: str, values: dict, path: Path) -> VolunteerModel:
    known = {f.name for f in fields(VolunteerModel)}
    if set(values) != known:
        raise ValueError(
            f"{path}: preset {name!r} has unknown constants {sorted(set(values) - known)} and"
            f" lacks {sorted(known - set(values))}; rerun python -m zoolib calibrate"
        )
    return VolunteerModel(**values)


def preset(name: str | Preset = DEFAULT_PRESET) -> Preset:
    """Look up a survey preset by name, with an error listing the known ones."""
    if isinstance(name, Preset):
        return name
    presets = load_presets()
    if name not in presets:
        raise ValueError(f"unknown universe preset {name!r}; known: {sorted(presets)}")
    return presets[name]


def effective_psf(psf_px: np.ndarray, pixel_px: float | np.ndarray = 0.0) -> np.ndarray:
    """PSF sigma with the blur of a pixel of width ``pixel_px`` added in quadrature.

    A pixel of width w blurs like a box (rms w / sqrt(12) = 0.29 w) and sampling every w cannot
    show periods shorter than 2 w; we count it as a Gaussian of sigma ``PIXEL_SIGMA * w``.
    Volunteers look at images with pixels much finer than the PSF (``pixel_px = 0``).
    """
    return np.sqrt(np.asarray(psf_px) ** 2 + (PIXEL_SIGMA * np.asarray(pixel_px)) ** 2)


def visibility(lat: pd.DataFrame, psf: np.ndarray | None = None) -> pd.DataFrame:
    """Visibility scores in [0, 1] (clarity, features, outline, bar), plus the latent ``star_near``.

    ``psf`` is the PSF sigma in the latents' pixels used to judge resolution (default: the
    galaxy's own, as volunteers see it). Resolution is the disk scale or bar length against the
    PSF; detection is surface brightness against the sky noise; both are smooth ramps.
    """
    featured = (lat["morphology"] == "featured").to_numpy()
    psf = lat["psf_sigma_px"].to_numpy() if psf is None else np.asarray(psf)
    sb = lat["surface_brightness"].to_numpy()
    q = lat["axis_ratio"].to_numpy()
    h = np.nan_to_num(lat["disk_scale_px"].to_numpy())
    snr = sb / lat["sky_noise"].to_numpy()  # per pixel of a 64-px image
    detected = special.expit((np.log(snr) - np.log(DETECTION_SNR)) / 0.4)
    resolved = special.expit((h / psf - 3.0) / 0.8)  # structure spans several PSF widths
    arms = lat["arm_amplitude"].to_numpy() * np.minimum(lat["n_arms"].to_numpy(), 2) / 2
    bar = lat["bar_strength"].to_numpy()
    bulge = np.nan_to_num(lat["bulge_fraction"].to_numpy())
    structure = np.clip(arms + 0.6 * bar + 0.3 * (1 - bulge), 0, 1)
    outline = special.expit((h / psf - 1.0) / 0.4) * detected  # the disk's shape is seen
    extent = np.where(featured, h, lat["r_eff_px"].to_numpy())  # scale length or half-light radius
    clarity = special.expit((np.nan_to_num(extent) / psf - 2.0) / 0.5) * detected
    # an inclined disk is a thin streak, if resolved (else a "cigar", smooth to volunteers)
    streak = special.expit((0.32 - q) / 0.05) * special.expit((h / psf - 2.0) / 0.6) * detected
    features = np.maximum(structure * resolved * detected, streak)
    bar_seen = (
        bar
        * special.expit((lat["bar_length_px"].to_numpy() / psf - 4.0) / 0.8)  # well resolved
        * special.expit((q - 0.45) / 0.08)  # in a disk that is not too inclined
        * detected
    )
    return pd.DataFrame(
        {
            "clarity": clarity,
            "features": np.where(featured, features, 0.0),
            "outline": np.where(featured, outline, 0.0),
            "bar": np.where(featured, np.clip(bar_seen, 0, 1), 0.0),
            "star_near": lat["star_near"].to_numpy(bool),
        },
        index=lat.index,
    )


def _logits(lat: pd.DataFrame, vis: pd.DataFrame, m: VolunteerModel) -> dict[str, np.ndarray]:
    """Logits of each answer without the ambiguity term."""
    featured = (lat["morphology"] == "featured").to_numpy()
    q = lat["axis_ratio"].to_numpy()
    edge = vis["outline"] * special.expit((m.edge_q - q) / m.edge_width)  # V_edge
    seen = np.where(
        featured, m.feat_disk + m.feat_slope * vis["features"], m.feat_ell + m.feat_flat * (1 - q)
    )
    clarity = vis["clarity"].to_numpy()
    return {
        "featured": clarity * seen + (1 - clarity) * m.feat_blur,
        "artifact": m.art_base + m.art_star * vis["star_near"].to_numpy(),
        "edge": m.edge_base
        + np.where(featured, m.edge_slope * edge, m.edge_flat * (1 - q) - m.edge_ell_below),
        "bar": m.bar_base + np.where(featured, m.bar_slope * vis["bar"], -m.bar_ell_below),
    }


def _assemble(logit: dict, m: VolunteerModel, link, index) -> pd.DataFrame:
    """Answer probabilities from the logits; ``link(logit, ambiguity scale, question)``."""
    p_feat = link(logit["featured"], m.amb_smooth, "smooth-or-featured")
    p_art = special.expit(logit["artifact"])  # no ambiguity term
    p_edge = link(logit["edge"], m.amb_edge, "disk-edge-on")
    p_bar = link(logit["bar"], m.amb_bar, "bar")
    p_smooth = (1 - p_art) * (1 - p_feat)
    return pd.DataFrame(
        {
            "p_smooth": p_smooth,
            "p_featured": (1 - p_art) * p_feat,
            "p_artifact": p_art,
            "true_p_smooth-or-featured": p_smooth,
            "true_p_disk-edge-on": p_edge,
            "true_p_bar": p_bar,
        },
        index=index,
    )


def true_probabilities(lat: pd.DataFrame, volunteers: VolunteerModel) -> pd.DataFrame:
    """A typical volunteer's answer probabilities for each galaxy: the simulation's truth.

    Columns ``p_smooth``, ``p_featured``, ``p_artifact`` (summing to 1) and
    ``true_p_<question>``: smooth (the "yes" of smooth-or-featured), edge-on (asked of those who
    said featured) and bar (asked of those who then said not edge-on). They depend on the
    latents only through ratios of sizes, so not on the image size.
    """
    logit = _logits(lat, visibility(lat), volunteers)

    def with_ambiguity(mu, scale, question):  # this galaxy's own draw of the ambiguity
        return special.expit(mu + scale * lat[AMBIGUITY_COLUMNS[question]].to_numpy())

    return _assemble(logit, volunteers, with_ambiguity, lat.index)


def answer_truth(probs: pd.DataFrame) -> pd.DataFrame:
    """Every answer's true probability, ``true_p_<question>_<answer>`` (the per-answer targets
    of a tree model), from :func:`true_probabilities`' columns: smooth / featured-or-disk /
    artifact, then yes and no of disk-edge-on and of bar (each question's answers sum to 1)."""
    edge, bar = probs["true_p_disk-edge-on"], probs["true_p_bar"]
    return pd.DataFrame({
        "true_p_smooth-or-featured_smooth": probs["p_smooth"],
        "true_p_smooth-or-featured_featured-or-disk": probs["p_featured"],
        "true_p_smooth-or-featured_artifact": probs["p_artifact"],
        "true_p_disk-edge-on_yes": edge, "true_p_disk-edge-on_no": 1 - edge,
        "true_p_bar_yes": bar, "true_p_bar_no": 1 - bar,
    }, index=probs.index)  # fmt: skip


def expected_expit(mu: np.ndarray, scale: float) -> np.ndarray:
    """E[expit(mu + scale * e)] for e ~ N(0, 1), by Gauss-Hermite quadrature."""
    values = special.expit(np.asarray(mu)[..., None] + scale * _NODES)
    return values @ _WEIGHTS / _WEIGHTS.sum()


def recoverable_probabilities(
    lat: pd.DataFrame, volunteers: VolunteerModel, pixel_px: float = 1.0
) -> pd.DataFrame:
    """The part of the truth an image can show: ``recoverable_p_<question>`` columns.

    Expectation over the galaxy-level ambiguity (which no image shows), with resolution judged
    at :func:`effective_psf` for pixels ``pixel_px`` wide in the latents' units (1.0: the
    rendered image itself). The gap between ``true_p`` and this is measured in notebook 01.
    """
    vis = visibility(lat, effective_psf(lat["psf_sigma_px"].to_numpy(), pixel_px))
    logit = _logits(lat, vis, volunteers)
    probs = _assemble(logit, volunteers, lambda mu, scale, _: expected_expit(mu, scale), lat.index)
    cols = [c for c in probs.columns if c.startswith("true_p_")]
    return probs[cols].rename(columns=lambda c: c.replace("true_p_", "recoverable_p_"))


def unrecoverable_rmse(
    lat: pd.DataFrame, volunteers: VolunteerModel, pixels: dict[str, float]
) -> pd.DataFrame:
    """RMSE of ``true_p`` against what images with coarser pixels can show, per question.

    ``pixels`` maps a label (e.g. "32 px") to a pixel width in the latents' units (the dataset's
    own pixels: 1.0; an image of half the size: 2.0; 0.0: no pixel blur, the ambiguity alone).
    The ambiguity-only row (0.0) is a true floor: no prediction from the latents, let alone the
    image, has a smaller expected RMSE. The other rows use the pixel rule of thumb
    (:func:`effective_psf`): approximate references, not bounds.
    """
    truth = true_probabilities(lat, volunteers).filter(like="true_p_")
    rows = {}
    for label, width in pixels.items():
        shown = recoverable_probabilities(lat, volunteers, width).to_numpy()
        rows[label] = np.sqrt(np.mean((shown - truth.to_numpy()) ** 2, axis=0))
    columns = [c.removeprefix("true_p_") for c in truth.columns]
    return pd.DataFrame(rows, index=columns).T.rename_axis("pixels")
