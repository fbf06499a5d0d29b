"""The maths of volunteer votes and decision trees, numpy only (floor 1).

Imports nothing of zoolib but the foundations. Modules, bottom-up (each imports only those
above it):

    * :mod:`zoolib.votes.schema` - the Galaxy Zoo questions, column names, (k, N) arrays and checks
    * :mod:`zoolib.votes.trees` - decision trees as data: GZ2, GZ DECaLS, a user's YAML or columns
    * :mod:`zoolib.votes.binomial` - binomial maths of votes: mixtures, intervals, coverage
    * :mod:`zoolib.votes.multinomial` - vote vectors: multinomial, Dirichlet-multinomial, exact BALD
    * :mod:`zoolib.votes.metrics` - per-question RMSE and NLL
"""
