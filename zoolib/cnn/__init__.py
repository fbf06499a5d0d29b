"""The Bayesian CNN in Keras: loss, model, training, MC-dropout posteriors (floor 4).

Imports the folders below it (votes, data, universe) and the foundations. ``shipped/`` holds the
models that ship with the package, each with its manifest: ``simulated/`` (``make pretrain``) and
``real/`` (``make pretrain-real``). Modules, bottom-up:

    * :mod:`zoolib.cnn.losses` - binomial likelihood of (k, N) votes, as a Keras loss
    * :mod:`zoolib.cnn.models` - the paper's CNN with a deterministic trunk and an MC-dropout head
    * :mod:`zoolib.cnn.precision` - float32 or mixed bfloat16, and auto's measured choice
    * :mod:`zoolib.cnn.contrastive` - SimCLR and multi-task training of a trunk on real images
    * :mod:`zoolib.cnn.cards` - model cards: what a saved model predicts and how it was made
    * :mod:`zoolib.cnn.distributed` - the tf.distribute training loop for clusters
    * :mod:`zoolib.cnn.training` - training: Keras ``fit``, or the distributed loop
    * :mod:`zoolib.cnn.posteriors` - MC-dropout samples of rho from a Keras model
    * :mod:`zoolib.cnn.evaluation` - test-set metrics against baselines, metrics files
    * :mod:`zoolib.cnn.pretrained` - the shipped CNNs: made, checked, loaded, fine-tuned
    * :mod:`zoolib.cnn.similarity` - galaxies like this one, and unusual ones, from trunk features
    * :mod:`zoolib.cnn.probes` - linear probes, learning curves, precision@k: a trunk's yardstick
"""
