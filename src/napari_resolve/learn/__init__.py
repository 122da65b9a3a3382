"""Learning the LRES -> HRES mapping.

:mod:`.config` (TrainConfig: every training default), :mod:`.pairs` (registered
training pairs, patch sampling, the validation split), :mod:`.degradation` and
:mod:`.synthetic` (the degradation model and synthetic pairs), :mod:`.training`
(``plan_train``, ``plan_train_synthetic``, ``iter_train(plan)``) with
:mod:`.train_step` (one iteration's parts), :mod:`.losses`, :mod:`.inference`,
:mod:`.tiling` and :mod:`.sinks` (tiled inference).

The modules that run networks (:mod:`.training`, :mod:`.train_step`,
:mod:`.inference`, :mod:`.losses`) import torch; importing this package, or
:mod:`.config`, does not.
"""
