"""zoolib: the tested logic behind the zoo notebooks.

Bayesian CNNs and active learning for Galaxy Zoo vote counts, after Walmsley et al. 2020,
MNRAS 491, 1554. Six folders, one per area, listed from the bottom of the import graph up:
a module imports only its own folder, the folders listed above its own, and the foundations
(``tests/test_imports.py`` checks it). Inside a folder, its ``__init__`` lists the modules in
the same bottom-up order. docs/layout.md is the map with what each folder owns.

Foundations (floor 0, top level)
    * :mod:`zoolib.paths` - project paths from one root constant
    * :mod:`zoolib.files` - atomic writes, JSON and hashes, with the user's umask
    * :mod:`zoolib.quiet` - TensorFlow imported without its C++ start-up lines (notebooks)

Folders
    * :mod:`zoolib.votes` - floor 1: the maths of votes and decision trees (numpy only)
    * :mod:`zoolib.data` - floor 2: catalogues, image files, the processed-dataset format, tf.data
    * :mod:`zoolib.universe` - floor 3: the simulated universe and its calibrated volunteers
    * :mod:`zoolib.cnn` - floor 4: the Bayesian CNN: loss, model, training, MC-dropout posteriors,
      the shipped models
    * :mod:`zoolib.active` - floor 5: active learning: acquisition, strategies, savings, the loop
      and its two regimes
    * :mod:`zoolib.reports` - floor 6: figures, the widget, the notebook runner and the index page

Uses (top level, above every folder)
    * :mod:`zoolib.prepare` - builds processed datasets from simulations or catalogues
    * :mod:`zoolib.predict` - MC-dropout prediction of whole catalogues, in shards
    * :mod:`zoolib.acquire` - the next galaxies for volunteers, as a Zooniverse subject manifest
    * :mod:`zoolib.__main__` - the command line (``python -m zoolib --help``)

Where the paper's three pieces live: the loss in :mod:`zoolib.cnn.losses`, the model in
:mod:`zoolib.cnn.models`, the acquisition in :mod:`zoolib.active.acquisition`.

Submodules are imported explicitly (``from zoolib.cnn import losses``) so that importing zoolib
or one of its folders does not start TensorFlow.
"""

__version__ = "0.1.0"
