"""The IB-VAE: a VAE whose latent layer is Information Dropout (or, for comparison, the
Gaussian sampler).

Modules, in the order they import each other: :mod:`.config` (the hyperparameters),
:mod:`.nets` (the built-in encoder / decoder), :mod:`.model` (the :class:`~.model.VAE`, which
takes any encoder and decoder), then the pipelines :mod:`.metrics`, :mod:`.evaluate`,
:mod:`.sampling`, :mod:`.plots` and :mod:`.train`.
"""
