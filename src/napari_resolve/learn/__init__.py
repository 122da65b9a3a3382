"""Learning the LRES -> HRES mapping: pairs, synthetic degradation, training, tiled inference, losses.

The modules that run networks (:mod:`.training`, :mod:`.inference`, :mod:`.losses`)
import torch; importing this package does not.
"""
