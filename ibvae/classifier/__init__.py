"""The paper's supervised experiments: All-CNN-96 on Cluttered MNIST (All-CNN-32 on CIFAR-10
or on occluded / plain Fashion-MNIST) with information, binary or no dropout pools, the
batch-norm recalibration, the KL heatmaps with their localisation lift and AUC, and the
nuisance probe.

Modules, in the order they import each other (nothing imports upward): :mod:`.config` (the
run's and the generators' hyperparameters); :mod:`.data` (classification splits),
:mod:`.cluttered` (the Cluttered MNIST generator) and :mod:`.occluded` (the occluded
Fashion-MNIST generator); :mod:`.models` (All-CNN); then the pipelines :mod:`.plots`,
:mod:`.batchnorm`, :mod:`.train` (``train_classifier``), :mod:`.localisation` (receptive-field
centres, box cells, lift and AUC), :mod:`.kl_maps` and :mod:`.probe`. This file imports none
of them, so importing one module loads only what it needs.
"""
