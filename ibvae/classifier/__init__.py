"""The paper's supervised experiment: All-CNN-96 on Cluttered MNIST (All-CNN-32 on CIFAR-10)
with information, binary or no dropout pools, the batch-norm recalibration, and the KL
heatmaps with their localisation lift.

Modules, in the order they import each other (nothing imports upward): :mod:`.config` (the
run's and the generator's hyperparameters); :mod:`.data` (classification splits) and
:mod:`.cluttered` (the Cluttered MNIST generator); :mod:`.models` (All-CNN); then the
pipelines :mod:`.plots`, :mod:`.batchnorm`, :mod:`.train` (``train_classifier``) and
:mod:`.kl_maps`. This file imports none of them, so importing one module loads only what it
needs.
"""
