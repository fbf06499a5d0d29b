"""zoolib: the tested logic behind the zoo notebooks.

Bayesian CNNs and active learning for Galaxy Zoo vote counts, after Walmsley et al. 2020,
MNRAS 491, 1554. One module per concept:

* :mod:`zoolib.losses` - binomial likelihood of (k, n) votes, as a Keras loss
* :mod:`zoolib.models` - the paper's CNN with a deterministic trunk and an MC-dropout head
* :mod:`zoolib.binomial` - binomial maths of votes (numpy): mixtures, intervals, coverage
* :mod:`zoolib.posteriors` - MC-dropout samples of rho from a Keras model
* :mod:`zoolib.files` - atomic writes, JSON and hashes, with the user's umask
* :mod:`zoolib.acquisition` - entropies and BALD, top-k selection
* :mod:`zoolib.metrics` - per-question RMSE and NLL
* :mod:`zoolib.synthetic` - the simulated universe: galaxies, images, decision-tree votes
* :mod:`zoolib.volunteers` - the simulated volunteers and the survey presets
* :mod:`zoolib.calibration` - fits the volunteers to real vote fractions; KS / W1 distances
* :mod:`zoolib.runner` - runs the numbered notebooks with papermill into reports
* :mod:`zoolib.paths` - project paths from one root constant

Submodules are imported explicitly (``from zoolib import losses``) so that importing zoolib
does not start TensorFlow.
"""

__version__ = "0.1.0"
