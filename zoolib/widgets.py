"""Interactive exploration of MC-dropout posteriors (ipywidgets).

:class:`GalaxyExplorer` shows one galaxy's image and its posterior over the vote count
(:func:`zoolib.plots.draw_posterior`), with controls to choose the question and the galaxy,
sort galaxies by uncertainty (predictive entropy) or by BALD mutual information, choose how many
of the T samples to use, and toggle the per-sample curves. In a headless run (the runner sets
``ZOO_HEADLESS=1``) or in an HTML report, :meth:`GalaxyExplorer.show` draws a static figure
instead, so the report shows the explorer's current view rather than nothing.
"""

from __future__ import annotations

import os

import ipywidgets as w
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from zoolib import acquisition, plots
from zoolib.schema import counts

SORT_KEYS = ("catalogue order", "uncertainty (predictive entropy)", "mutual information (BALD)")


class GalaxyExplorer:
    """Explore posteriors of ``rho_samples`` (galaxies, Q, T) for ``images`` (galaxies, S, S, C).

    ``catalog`` holds the galaxies' observed votes (canonical columns), ``questions`` the Q
    question names in the model's output order.
    """

    def __init__(
        self,
        images: np.ndarray,
        rho_samples: np.ndarray,
        catalog: pd.DataFrame,
        questions: list[str],
    ):
        if not (len(images) == len(rho_samples) == len(catalog)):
            raise ValueError("images, rho_samples and catalog must have the same length")
        self.images, self.rho, self.catalog = images, np.asarray(rho_samples), catalog
        self.questions = list(questions)
        t = self.rho.shape[-1]
        self.question = w.Dropdown(options=self.questions, description="question")
        self.sort = w.Dropdown(options=SORT_KEYS, value=SORT_KEYS[2], description="sort by")
        self.rank = w.IntSlider(0, 0, len(images) - 1, description="galaxy #")
        self.n_samples = w.IntSlider(t, 1, t, description="T samples")
        self.show_samples = w.Checkbox(True, description="per-sample curves")
        self.output = w.Output()
        self.redraws = 0
        for control in (self.question, self.sort, self.rank, self.n_samples, self.show_samples):
            control.observe(lambda change: self.redraw(), names="value")

    def _k_n(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        k, n = counts(self.catalog, [self.questions[j]])
        return k[:, 0], n[:, 0]

    def order(self) -> np.ndarray:
        """Galaxy positions in the chosen sort order (most uncertain / informative first)."""
        j = self.questions.index(self.question.value)
        if self.sort.value == SORT_KEYS[0]:
            return np.arange(len(self.images))
        _, n = self._k_n(j)
        rho = self.rho[:, j, : self.n_samples.value]
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
        plots.draw_posterior(
            ax_post, self.rho[i, j, : self.n_samples.value], int(n[i]), int(k[i]),
            show_samples=self.show_samples.value,
        )  # fmt: skip
        ax_post.legend(fontsize=7)
        ax_post.set_title(f"{self.question.value} ({self.sort.value}, #{self.rank.value})")
        fig.tight_layout()
        return fig

    def redraw(self) -> None:
        """Redraw the figure in the output area after a control changed."""
        from IPython.display import display

        self.redraws += 1
        with self.output:
            self.output.clear_output(wait=True)
            fig = self.figure()
            display(fig)
            plt.close(fig)

    def widget(self) -> w.Widget:
        """The controls and the output area, laid out."""
        left = w.VBox([self.question, self.sort])
        right = w.VBox([self.rank, self.n_samples, self.show_samples])
        controls = w.HBox([left, right])
        return w.VBox([controls, self.output])

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
