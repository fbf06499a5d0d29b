"""Interactive exploration of MC-dropout posteriors (ipywidgets).

:class:`GalaxyExplorer` shows one galaxy's image and its posterior over the vote count, with
controls to choose the question and the galaxy, sort galaxies by uncertainty (predictive
entropy) or by BALD mutual information, switch between the MC-dropout posterior (the mixture of
the T sampled binomials, :func:`zoolib.reports.plots.draw_posterior`) and the single deterministic
pass (one binomial with dropout off, :func:`zoolib.reports.plots.draw_single_pass`), choose how
many of the T samples to use, and toggle the per-sample curves. A status line under the figure says
how long the last redraw took. Every control has a label and is reachable with the Tab key in the
order it is laid out (left column top to bottom, then the right one); sliders move with the arrow
keys, the posterior buttons with Enter or Space.

In a headless run (the runner sets ``ZOO_HEADLESS=1``) or in an HTML report,
:meth:`GalaxyExplorer.show` draws a static figure instead, so the report shows the explorer's
current view rather than nothing.
"""

from __future__ import annotations

import base64
import io
import os
import time

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from zoolib.active import acquisition
from zoolib.reports import plots
from zoolib.votes.schema import counts

SORT_KEYS = ("catalogue order", "uncertainty (predictive entropy)", "mutual information (BALD)")
MC, SINGLE = "MC dropout", "single pass"
POSTERIORS = (MC, SINGLE)
NO_SINGLE_PASS = (
    "single pass unavailable: this explorer was made without rho_single (the deterministic "
    "pass with dropout off, zoolib.cnn.posteriors.deterministic_rho); pass it as "
    "GalaxyExplorer(..., rho_single=...) to compare"
)


def figure_output(fig) -> dict:
    """``fig`` as one output of an Output widget's ``outputs``: a PNG display_data message.

    The explorer sets its Output widget's outputs from the kernel instead of capturing a
    ``display`` inside ``with output:`` after ``clear_output(wait=True)``: that capture is done
    by the front end (JupyterLab, or nbclient's emulation of it under papermill), and a run of
    notebook 03 under papermill outside the runner once sat idle for 9 minutes in that cell.
    Set from the kernel, nothing waits on a front end."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, bbox_inches="tight")
    return {
        "output_type": "display_data", "metadata": {},
        "data": {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
                 "text/plain": f"<Figure size {fig.get_size_inches()[0] * fig.dpi:.0f}x"
                               f"{fig.get_size_inches()[1] * fig.dpi:.0f}>"},
    }  # fmt: skip


class GalaxyExplorer:
    """Explore posteriors of ``rho_samples`` (galaxies, Q, T) for ``images`` (galaxies, S, S, C).

    ``catalog`` holds the galaxies' observed votes (canonical columns), ``questions`` the Q
    question names in the model's output order; ``votes`` (k, N), each (galaxies, Q), the
    observed votes of names that are not schema questions (a tree model's answers, from
    :meth:`zoolib.cnn.cards.ModelCard.counts`), so any question and answer can be chosen.
    ``rho_single`` (galaxies, Q), the single deterministic pass, enables the "posterior"
    toggle between the MC-dropout mixture and that single binomial; without it the toggle is
    disabled and its tooltip says why. The galaxy order (sort by uncertainty or BALD) always
    comes from the MC samples, so switching the posterior keeps the same galaxy on show.
    """

    def __init__(
        self,
        images: np.ndarray,
        rho_samples: np.ndarray,
        catalog: pd.DataFrame,
        questions: list[str],
        rho_single: np.ndarray | None = None,
        votes: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        if not (len(images) == len(rho_samples) == len(catalog)):
            raise ValueError("images, rho_samples and catalog must have the same length")
        self.images, self.rho, self.catalog = images, np.asarray(rho_samples), catalog
        self.questions = list(questions)
        k, n = counts(catalog, self.questions) if votes is None else votes
        self.k, self.n = np.asarray(k), np.asarray(n)
        self.rho_single = None if rho_single is None else np.asarray(rho_single, dtype=float)
        if self.rho_single is not None and self.rho_single.shape != self.rho.shape[:2]:
            raise ValueError(
                f"rho_single must have shape (galaxies, Q) = {self.rho.shape[:2]}, "
                f"got {self.rho_single.shape}"
            )
        t = self.rho.shape[-1]
        self.question = w.Dropdown(
            options=self.questions, description="question", tooltip="the question asked"
        )
        self.sort = w.Dropdown(
            options=SORT_KEYS, value=SORT_KEYS[2], description="sort by",
            tooltip="order of the galaxies: most uncertain or most informative first",
        )  # fmt: skip
        self.rank = w.IntSlider(
            0, 0, len(images) - 1, description="galaxy #",
            tooltip="position of the galaxy in the sort order (arrow keys step through)",
        )  # fmt: skip
        available = self.rho_single is not None
        self.posterior = w.ToggleButtons(
            options=POSTERIORS, value=MC, description="posterior", disabled=not available,
            tooltip=("MC dropout: mixture of T binomials; single pass: one binomial, dropout off"
                     if available else NO_SINGLE_PASS),
            tooltips=(["mixture of the T dropout samples' binomials",
                       "one binomial at the deterministic rho (dropout off)"]
                      if available else [NO_SINGLE_PASS, NO_SINGLE_PASS]),
        )  # fmt: skip
        self.n_samples = w.IntSlider(
            t, 1, t, description="T samples", tooltip="dropout samples in the mixture"
        )
        self.show_samples = w.Checkbox(
            True, description="per-sample curves", tooltip="one grey binomial per dropout sample"
        )
        self.output = w.Output()
        self.status = w.Label("", style={"font_size": "0.85em", "text_color": "gray"})
        self.redraws = 0
        self.last_redraw_seconds: float | None = None
        for control in (self.question, self.sort, self.rank, self.n_samples, self.show_samples):
            control.observe(lambda change: self.redraw(), names="value")
        self.posterior.observe(self._posterior_changed, names="value")

    def controls(self) -> list[w.Widget]:
        """The controls in layout order, which is also their Tab order."""
        return [self.question, self.sort, self.rank,
                self.posterior, self.n_samples, self.show_samples]  # fmt: skip

    @property
    def single_pass(self) -> bool:
        """Whether the single-pass posterior is on show (else the MC-dropout mixture)."""
        return self.posterior.value == SINGLE

    def _posterior_changed(self, change) -> None:
        # T and the per-sample curves do not apply to one deterministic binomial
        self.n_samples.disabled = self.show_samples.disabled = self.single_pass
        self.redraw()

    def _k_n(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        return self.k[:, j], self.n[:, j]

    def order(self) -> np.ndarray:
        """Galaxy positions in the chosen sort order (most uncertain / informative first),
        ranked on all T samples, so moving the T slider redraws the same galaxy."""
        j = self.questions.index(self.question.value)
        if self.sort.value == SORT_KEYS[0]:
            return np.arange(len(self.images))
        _, n = self._k_n(j)
        rho = self.rho[:, j, :]
        pred, expected = acquisition.entropies(rho, n)
        if self.sort.value == SORT_KEYS[1]:
            return np.argsort(-pred, kind="stable")
        score = acquisition.bald_from_entropies(pred, expected)
        return np.argsort(-score, kind="stable")

    @property
    def galaxy(self) -> int:
        """Position (in the arrays) of the galaxy on show."""
        return int(self.order()[self.rank.value])

    def figure(self):
        """The current view as a matplotlib Figure."""
        j = self.questions.index(self.question.value)
        i = self.galaxy
        k, n = self._k_n(j)
        fig, (ax_img, ax_post) = plt.subplots(
            1, 2, figsize=(8, 3), gridspec_kw={"width_ratios": [1, 2.4]}
        )
        plots.show_image(ax_img, self.images[i], str(self.catalog["id_str"].iloc[i]))
        if self.single_pass:
            plots.draw_single_pass(ax_post, self.rho_single[i, j], int(n[i]), int(k[i]))
        else:
            plots.draw_posterior(
                ax_post, self.rho[i, j, : self.n_samples.value], int(n[i]), int(k[i]),
                show_samples=self.show_samples.value,
            )  # fmt: skip
        ax_post.legend(fontsize=7)
        title = (
            f"{self.question.value}, {self.posterior.value} ({self.sort.value}, #{self.rank.value})"
        )
        ax_post.set_title(title, fontsize=9)
        fig.tight_layout()
        return fig

    def redraw(self) -> None:
        """Redraw the figure in the output area after a control changed; the time this took
        (figure drawn and sent to the output area) is kept in ``last_redraw_seconds`` and shown
        in the status line under the figure."""
        start = time.perf_counter()
        self.redraws += 1
        fig = self.figure()
        self.output.outputs = (figure_output(fig),)  # set from the kernel: see figure_output
        plt.close(fig)
        self.last_redraw_seconds = time.perf_counter() - start
        self.status.value = f"redrawn in {self.last_redraw_seconds:.2f} s"

    def widget(self) -> w.Widget:
        """The controls, the output area and the status line, laid out (see :meth:`controls`
        for the order)."""
        controls = self.controls()
        left, right = w.VBox(controls[:3]), w.VBox(controls[3:])
        return w.VBox([w.HBox([left, right]), self.output, self.status])

    def show(self, headless: bool | None = None):
        """Display the explorer, or a static figure when headless (default: ``ZOO_HEADLESS``)."""
        from IPython.display import display

        if headless is None:
            headless = bool(os.environ.get("ZOO_HEADLESS"))
        if headless:
            fig = self.figure()
            display(fig)
            plt.close(fig)
            return fig
        self.redraw()
        display(self.widget())
        return None
