"""zoolib: the tested logic behind the zoo notebooks.

Bayesian CNNs and active learning for Galaxy Zoo vote counts, after Walmsley et al. 2020,
MNRAS 491, 1554. One module per concept, listed from the bottom of the import graph up (a
module imports only modules above it in this list, never below):

Foundations
    * :mod:`zoolib.paths` - project paths from one root constant
    * :mod:`zoolib.files` - atomic writes, JSON and hashes, with the user's umask
    * :mod:`zoolib.schema` - the Galaxy Zoo questions, column names, (k, N) arrays and checks
    * :mod:`zoolib.trees` - decision trees as data: GZ2, GZ DECaLS, a user's YAML or columns

Maths (numpy only)
    * :mod:`zoolib.binomial` - binomial maths of votes: mixtures, intervals, coverage
    * :mod:`zoolib.multinomial` - vote vectors: multinomial, Dirichlet-multinomial, exact BALD
    * :mod:`zoolib.metrics` - per-question RMSE and NLL
    * :mod:`zoolib.acquisition` - entropies and BALD, top-k selection
    * :mod:`zoolib.heads` - the MC-dropout head on cached features: training and sampling
    * :mod:`zoolib.targeted` - target-aware acquisition: EPIG and greedy variance reduction
    * :mod:`zoolib.strategies` - acquisition strategies: scores, selection, expected votes
    * :mod:`zoolib.savings` - paired savings and curve gaps against random, bootstrap intervals

Data
    * :mod:`zoolib.volunteers` - the simulated volunteers and the survey presets
    * :mod:`zoolib.synthetic` - the simulated universe: galaxies, images, decision-tree votes
    * :mod:`zoolib.catalogs` - reads GZ2 / GZ DECaLS / class catalogues into one vote table
    * :mod:`zoolib.images` - loads image files (crop, resize, greyscale)
    * :mod:`zoolib.calibration` - fits the volunteers to real vote fractions; KS / W1 distances
    * :mod:`zoolib.data` - the processed-dataset format on disk
    * :mod:`zoolib.prepare` - builds processed datasets from simulations or catalogues

Models (Keras)
    * :mod:`zoolib.losses` - binomial likelihood of (k, n) votes, as a Keras loss
    * :mod:`zoolib.models` - the paper's CNN with a deterministic trunk and an MC-dropout head
    * :mod:`zoolib.precision` - float32 or mixed bfloat16 for the CNN, and auto's measured choice
    * :mod:`zoolib.cards` - model cards: what a saved model predicts and how it was made
    * :mod:`zoolib.pipeline` - the tf.data input pipeline with augmentation and sharding
    * :mod:`zoolib.distributed` - the tf.distribute training loop for clusters
    * :mod:`zoolib.training` - training: Keras ``fit``, or the distributed loop
    * :mod:`zoolib.posteriors` - MC-dropout samples of rho from a Keras model

Uses
    * :mod:`zoolib.evaluation` - test-set metrics against baselines, metrics files
    * :mod:`zoolib.pretrained` - the shipped pretrained CNN: made, checked, loaded
    * :mod:`zoolib.runs` - active-learning run state: settings, random streams, run files
    * :mod:`zoolib.loop` - the one round loop of both regimes: resume, fit, acquire, write
    * :mod:`zoolib.finetune` - active learning with heads on the pretrained trunk's features
    * :mod:`zoolib.active` - active learning in the paper's regime: CNNs trained on images
    * :mod:`zoolib.predict` - MC-dropout prediction of whole catalogues, in shards
    * :mod:`zoolib.plots` - the notebooks' figures
    * :mod:`zoolib.widgets` - the GalaxyExplorer posterior widget
    * :mod:`zoolib.report_index` - the reports' index page: key figures, parameters, metrics
    * :mod:`zoolib.runner` - runs the numbered notebooks with papermill into reports
    * :mod:`zoolib.__main__` - the command line (``python -m zoolib --help``)

Submodules are imported explicitly (``from zoolib import losses``) so that importing zoolib
does not start TensorFlow.
"""

__version__ = "0.1.0"
