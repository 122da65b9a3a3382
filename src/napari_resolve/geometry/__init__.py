"""Grids and boxes in world coordinates (um, the LRES frame); no torch, Qt or napari.

- :mod:`.grid`: the output grid of an upscaled region, ROIs in voxels, the LRES box a grid needs;
- :mod:`.resample`: one array resampled onto another grid.
"""
