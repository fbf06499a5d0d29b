"""Data on disk and in memory: catalogues, image files, processed datasets, tf.data (floor 2).

Imports :mod:`zoolib.votes` and the foundations. Modules, bottom-up:

    * :mod:`zoolib.data.catalogs` - reads GZ2 / GZ DECaLS / class catalogues into one vote table
    * :mod:`zoolib.data.images` - loads image files, JPEG/PNG/FITS (crop, resize, greyscale)
    * :mod:`zoolib.data.processed` - the processed-dataset format on disk (what notebook 01 writes)
    * :mod:`zoolib.data.pipeline` - the tf.data input pipeline with augmentation and sharding
    * :mod:`zoolib.data.panoptes` - Zooniverse exports in, subject manifests out
"""
