"""Everything napari and Qt: one module per dock widget, plus shared helpers.

- ``_workers``: :class:`Job`, running a core generator in a napari thread worker
  with a state (idle/running/done/stopped/failed), progress and Stop.
- ``_layers``: add-or-update a plugin layer by name, layer geometry helpers.
- ``_forms``: small form parts shared by the widgets (layer pickers, voxel size
  fields, run/stop/progress controls).
- ``_plots``: a matplotlib canvas styled for napari's dark theme.
- ``_session``: state shared by the widgets of one viewer (the current model).

Nothing outside this package imports it.
"""
