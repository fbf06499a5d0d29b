"""Active learning: which galaxies volunteers should label next, and what that saves (floor 5).

Imports the folders below it (votes, data, universe, cnn) and the foundations. Acquisition
heuristics are small and separate (as in BaaL); one round loop serves both regimes, each named
by what it trains: ``heads_regime`` (notebook 04's ``regime: "finetune"``: MC-dropout heads on the
pretrained trunk's cached features) and ``cnn_regime`` (``regime: "scratch"``: the paper's CNN
trained on the images). Modules, bottom-up:

    * :mod:`zoolib.active.acquisition` - entropies and BALD, top-k selection
    * :mod:`zoolib.active.heads` - the MC-dropout head on cached features: training and sampling
    * :mod:`zoolib.active.targeted` - target-aware acquisition: EPIG, greedy variance reduction
    * :mod:`zoolib.active.strategies` - acquisition strategies: scores, selection, expected votes
    * :mod:`zoolib.active.campaign` - scores and picks on a real catalogue, every question of a tree
    * :mod:`zoolib.active.savings` - paired savings and curve gaps against random, with intervals
    * :mod:`zoolib.active.runs` - run state: settings, random streams, run files
    * :mod:`zoolib.active.loop` - the one round loop of both regimes: resume, fit, acquire, write
    * :mod:`zoolib.active.heads_regime` - the heads learner (regime "finetune")
    * :mod:`zoolib.active.cnn_regime` - the CNN learner (regime "scratch", the paper's)
"""
