"""The simulated universe: galaxies, images and volunteers calibrated to real votes (floor 3).

Imports the folders below it (votes, data) and the foundations. Modules, bottom-up:

    * :mod:`zoolib.universe.volunteers` - the simulated volunteers and the survey presets
      (``presets.json``, written by ``python -m zoolib calibrate``)
    * :mod:`zoolib.universe.synthetic` - galaxies, images and decision-tree votes
    * :mod:`zoolib.universe.calibration` - fits the volunteers to real vote fractions; KS / W1
"""
