"""Quality widget: MS-SSIM/SSIM maps over the HRES, metrics with baselines, lowest regions to jump to."""

import math
import re

import numpy as np
import pytest

from napari_resolve._qt._layers import is_produced
from napari_resolve._qt.quality_widget import CUBIC, RL, UPSCALED, QualityWidget, plan_overlap
from napari_resolve.errors import InputError


def _wait(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: widget.job.state != "running", timeout=timeout)
    assert widget.job.state == "done", widget.job.error


def _upscaled_like(viewer, hres, data, name="upscaled test", translate=None):
    """An 'upscaled' layer on the HRES grid (or shifted by ``translate``)."""
    return viewer.add_image(
        data,
        name=name,
        scale=tuple(hres.scale),
        translate=tuple(hres.translate) if translate is None else translate,
    )


def _corrupted(hres, box, seed=0):
    data = np.array(hres.data, dtype=np.float32)
    rng = np.random.default_rng(seed)
    data[box] += rng.normal(0.0, 0.5, data[box].shape).astype(np.float32)
    return data


def _world_extent(layer):
    lo = np.asarray(layer.translate, float)
    return lo, lo + (np.asarray(layer.data.shape) - 1) * np.asarray(layer.scale)


def test_identical_result_gives_a_perfect_map_over_the_hres(registered_viewer, qtbot):
    viewer, lres, hres = registered_viewer
    up = _upscaled_like(viewer, hres, np.array(hres.data))
    w = QualityWidget(viewer)
    assert w.result_combo.value.name == "upscaled test"  # pre-selected by name
    assert w.hres_combo.value is hres and w.lres_combo.value is lres
    w.baselines_check.value = False
    assert w.run()
    _wait(qtbot, w)

    layer = viewer.layers["MS-SSIM: upscaled test"]
    assert is_produced(layer)
    np.testing.assert_allclose(layer.scale, hres.scale)
    # On the HRES grid: same phase, inside the HRES, covering all of it (the overlap here).
    lo, hi = _world_extent(layer)
    hlo, hhi = _world_extent(hres)
    assert np.all(lo >= hlo - 1e-6) and np.all(hi <= hhi + 1e-6)
    np.testing.assert_allclose(lo, hlo, atol=1e-6)
    np.testing.assert_allclose(hi, hhi, atol=1e-6)
    assert float(np.mean(layer.data)) > 0.999
    assert layer.contrast_limits[1] == pytest.approx(1.0)
    assert layer.colormap.map(np.array([1.0]))[0, 3] == pytest.approx(0.0)  # a perfect score is transparent
    assert layer.colormap.map(np.array([0.0]))[0, 3] > 0.9  # a low one is opaque

    ssim_layer = viewer.layers["SSIM: upscaled test"]
    assert not ssim_layer.visible
    assert float(np.mean(ssim_layer.data)) > 0.999
    assert set(w.metrics) == {UPSCALED}
    assert w.metrics[UPSCALED]["psnr"] == math.inf or w.metrics[UPSCALED]["psnr"] > 60
    assert w.metrics[UPSCALED]["ms_ssim"] > 0.999
    assert "cropped exactly" in w.summary.value
    # Effective resolution of a copy of the HRES: no blur, and the FSC never drops.
    assert set(w.resolution) == {UPSCALED} and w.resolution[UPSCALED]["fwhm_um"] < 0.05
    assert w.resolution[UPSCALED]["frc_1/7_um"] is None and not w.resolution_table.isHidden()
    assert w.resolution_table.item(0, 1).text() == "< 2.00"  # 1 um voxels: periods down to 2 um measured

    # Again, after the result changed: the same layers are updated, none added.
    names = [la.name for la in viewer.layers]
    ssim_layer.visible = True  # a user's choice survives the update
    up.data = _corrupted(hres, (slice(30, 45),) * 3)
    w.baselines_check.value = True
    w.lres_combo.value = None  # "(none)": no baselines
    w.resolution_check.value = False
    assert w.run()
    _wait(qtbot, w)
    assert w.resolution == {} and w.resolution_table.isHidden() and w.resolution_plot.isHidden()
    assert [la.name for la in viewer.layers] == names
    assert viewer.layers["MS-SSIM: upscaled test"] is layer
    assert float(layer.data.min()) < 0.9  # the new map replaced the old one
    assert ssim_layer.visible
    assert set(w.metrics) == {UPSCALED} and "Baselines skipped" in w.summary.value


def test_corrupted_block_is_ranked_lowest_and_jump_goes_there(registered_viewer, qtbot):
    viewer, lres, hres = registered_viewer
    box = (slice(32, 44), slice(14, 26), slice(50, 62))
    _upscaled_like(viewer, hres, _corrupted(hres, box))
    w = QualityWidget(viewer)
    assert w.run()
    _wait(qtbot, w)

    # Metrics: three rows, all finite, in the table too.
    assert set(w.metrics) == {UPSCALED, CUBIC, RL}
    for row in w.metrics.values():
        assert all(math.isfinite(v) for v in row.values())
    table = w.table
    assert table.rowCount() == 3 and table.columnCount() == 3
    assert table.verticalHeaderItem(0).text() == "upscaled" and "upscaled test" in table.verticalHeaderItem(0).toolTip()
    cells = [table.item(i, j).text() for i in range(3) for j in range(table.columnCount())]
    assert all(math.isfinite(float(c)) for c in cells)
    # The noisy copy of the HRES is much closer to it than any baseline.
    assert w.metrics[UPSCALED]["psnr"] > w.metrics[CUBIC]["psnr"] + 5
    assert table.item(0, 0).font().bold() and not table.item(1, 0).font().bold()

    # The corrupted block comes first, within one block (15 voxels here) of its centre.
    assert len(w.regions) == 10 and w.regions_table.rowCount() == 10
    scores = [r["score"] for r in w.regions]
    assert scores == sorted(scores)
    spot = np.asarray(hres.translate) + np.array([(s.start + s.stop - 1) / 2 for s in box]) * np.asarray(hres.scale)
    first = np.asarray(w.regions[0]["centre_um"])
    assert np.all(np.abs(first - spot) <= 15.0), (first, spot)
    assert w.regions[0]["score"] < w.regions[-1]["score"] - 0.02

    # Jump: slider on z, camera on (y, x), within half a voxel.
    before = {la.name: (tuple(la.translate), tuple(la.scale), la.visible) for la in viewer.layers}
    region = w.jump_to(0)
    assert abs(viewer.dims.point[0] - region["centre_um"][0]) <= 0.5 * hres.scale[0]
    np.testing.assert_allclose(viewer.scene.camera.center[1:], region["centre_um"][1:], atol=0.5)
    # A region picked in the list goes there too; layers are untouched, only the block's outline is added.
    w.regions_table.selectRow(3)
    assert abs(viewer.dims.point[0] - w.regions[3]["centre_um"][0]) <= 0.5 * hres.scale[0]
    np.testing.assert_allclose(viewer.scene.camera.center[1:], w.regions[3]["centre_um"][1:], atol=0.5)
    after = {la.name: (tuple(la.translate), tuple(la.scale), la.visible) for la in viewer.layers}
    assert set(after) - set(before) == {"region outline"}
    assert {name: after[name] for name in before} == before


def test_effective_resolution_table_and_plots(registered_viewer, qtbot):
    from scipy import ndimage

    viewer, lres, hres = registered_viewer
    # A result 1.5 um blurrier than the HRES (1 um voxels): the Gaussian fit must say so.
    _upscaled_like(viewer, hres, ndimage.gaussian_filter(np.asarray(hres.data, np.float32), 1.5, mode="nearest"))
    w = QualityWidget(viewer)
    assert w.resolution_check.value  # on by default
    assert w.run()
    _wait(qtbot, w)
    assert set(w.resolution) == {UPSCALED, CUBIC, RL}
    up, cubic, rl = (w.resolution[k] for k in (UPSCALED, CUBIC, RL))
    assert up["sigma_um"] == pytest.approx(1.5, rel=0.1)
    assert up["fwhm_um"] == pytest.approx(2.3548 * up["sigma_um"], rel=1e-4)
    # The cubic LRES (3 um voxels, 1.5 um PSF) is blurrier still; Richardson-Lucy sharpens it.
    assert cubic["fwhm_um"] > 3.5 and rl["fwhm_um"] < cubic["fwhm_um"] - 0.5
    # A noiseless blur of the HRES still agrees with it far beyond the cubic LRES (FRC measures
    # agreement; it drops only where the blur has left almost no power), and RL lies between.
    assert 3.0 < cubic["frc_1/7_um"] < 12.0 and cubic["frc_half_bit_um"] >= cubic["frc_1/7_um"]
    assert up["frc_1/7_um"] is None or up["frc_1/7_um"] < cubic["frc_1/7_um"] - 1.0
    assert rl["frc_1/7_um"] < cubic["frc_1/7_um"]

    table = w.resolution_table
    assert not table.isHidden() and table.rowCount() == 3 and table.columnCount() == 3
    assert table.horizontalHeaderItem(0).text() == "FWHM"
    assert float(table.item(1, 0).text()) == pytest.approx(cubic["fwhm_um"], abs=0.006)
    # The smallest FWHM in bold (here RL, sharper than a 1.5 um blur), the others not.
    sharpest = int(np.argmin([w.resolution[k]["fwhm_um"] for k in (UPSCALED, CUBIC, RL)]))
    assert [table.item(i, 0).font().bold() for i in range(3)] == [i == sharpest for i in range(3)]

    ax_fit, ax_frc = w.resolution_plot.figure.axes
    assert len(ax_fit.lines) == 6 and len(ax_frc.lines) == 5  # 3 curves + 3 optima; 3 curves + 2 thresholds
    np.testing.assert_allclose(ax_frc.lines[-2].get_ydata(), 1 / 7)
    assert ax_frc.get_ylabel() == "FSC" and "σ" in ax_fit.get_xlabel()


def test_thin_overlap_and_unregistered_hres_are_refused(phantom_viewer):
    viewer, lres, hres = phantom_viewer
    with pytest.raises(InputError, match="only 76 x 76 x 8 voxels"):
        plan_overlap((76, 76, 76), (1, 1, 1), (0, 0, 68), (76, 76, 76), (1, 1, 1), (0, 0, 0))
    _upscaled_like(viewer, hres, np.array(hres.data))
    w = QualityWidget(viewer)
    # The button says why before anyone presses it...
    assert not w.controls.run_button.isEnabled() and "not registered" in w.controls.run_button.toolTip()
    assert not w.run()
    assert "not registered" in w.controls.status.text()
    # ...and comes on when the HRES is registered in the registration step (its layer moves into place).
    from napari_resolve._qt._session import place_registered
    from napari_resolve.registration import register

    place_registered(hres, register(lres.data, hres.data, lres.scale, hres.scale))
    assert w.controls.run_button.isEnabled() and w.controls.blocked is None


def test_result_away_from_the_hres_is_refused_and_off_phase_is_resampled(registered_viewer, qtbot):
    viewer, lres, hres = registered_viewer
    far = tuple(np.asarray(hres.translate) + np.array([0.0, 200.0, 0.0]))
    up = _upscaled_like(viewer, hres, np.array(hres.data), translate=far)
    w = QualityWidget(viewer)
    w.baselines_check.value = False
    assert not w.run()
    assert w.job.state == "idle"
    assert "does not overlap" in w.controls.status.text() and "Upscale a region" in w.controls.status.text()
    assert not any(la.name.startswith("MS-SSIM") for la in viewer.layers)

    # Half a voxel out of phase and only partly over the HRES.
    up.translate = tuple(np.asarray(hres.translate) + np.array([20.5, 0.5, -10.5]))
    assert w.run()
    _wait(qtbot, w)
    layer = viewer.layers["MS-SSIM: upscaled test"]
    assert "resampled" in w.summary.value
    np.testing.assert_allclose(layer.scale, hres.scale)
    index = (np.asarray(layer.translate) - np.asarray(hres.translate)) / np.asarray(hres.scale)
    np.testing.assert_allclose(index, np.round(index), atol=1e-6)  # on the HRES voxel centres
    lo, hi = _world_extent(layer)
    hlo, hhi = _world_extent(hres)
    assert np.all(lo >= hlo - 1e-6) and np.all(hi <= hhi + 1e-6)
    # HRES voxels inside the result's voxel-centre extent: 21..75, 1..75, 0..64.
    assert layer.data.shape == (55, 75, 65)
    np.testing.assert_allclose(index, (21, 1, 0), atol=1e-6)


def test_small_model_result_on_the_hres_phase(registered_viewer, small_model, qtbot):
    from napari_resolve.learn.inference import run_predict

    viewer, lres, hres = registered_viewer
    lo = np.floor(np.asarray(hres.translate) / np.asarray(lres.scale)).astype(int) - 1
    hi = np.ceil(_world_extent(hres)[1] / np.asarray(lres.scale)).astype(int) + 2
    roi = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    out = run_predict(small_model, np.asarray(lres.data), tuple(lres.scale), roi=roi, device="cpu")
    w = QualityWidget(viewer)  # open before the result exists: a new upscaled layer is picked up
    viewer.add_image(out.data, name="upscaled model", scale=out.grid.voxel_um, translate=out.grid.origin_um)
    assert w.result_combo.value.name == "upscaled model"
    assert w.run()
    _wait(qtbot, w)
    assert "cropped exactly" in w.summary.value  # the model's grid is in phase with the HRES
    layer = viewer.layers["MS-SSIM: upscaled model"]
    np.testing.assert_allclose(layer.translate, hres.translate, atol=1e-6)
    assert layer.data.shape == hres.data.shape  # the result covers the whole HRES
    assert set(w.metrics) == {UPSCALED, CUBIC, RL}
    for row in w.metrics.values():
        assert all(math.isfinite(v) for v in row.values())
    assert 0.2 < w.metrics[UPSCALED]["ms_ssim"] < 1.0
    assert w.error_layer is None and "Error map" not in w.summary.value  # no map came with this result


def test_the_error_map_is_shown_on_the_overlap_beside_the_ms_ssim_map(registered_viewer, small_model, qtbot):
    from napari_resolve._qt._error_maps import show_error_map
    from napari_resolve.learn.inference import run_predict

    viewer, lres, hres = registered_viewer
    lo = np.floor(np.asarray(hres.translate) / np.asarray(lres.scale)).astype(int) - 1
    hi = np.ceil(_world_extent(hres)[1] / np.asarray(lres.scale)).astype(int) + 2
    roi = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    out = run_predict(small_model, np.asarray(lres.data), tuple(lres.scale), roi=roi, device="cpu", uncertainty=True)
    result = viewer.add_image(out.data, name="upscaled: m.tif", scale=out.grid.voxel_um, translate=out.grid.origin_um)
    show_error_map(viewer, out.uncertainty, out.grid, result.translate, result.name)  # as the upscale step does
    w = QualityWidget(viewer)
    w.result_combo.value = result
    assert w.run()
    _wait(qtbot, w)
    emap, ms = w.error_layer, w.map_layer
    assert emap is not None and emap.name == "error map: overlap of m"
    assert "error map: m" in viewer.layers  # the whole result's map stays
    assert emap.data.shape == ms.data.shape
    np.testing.assert_allclose(emap.translate, ms.translate, atol=1e-9)
    agree = w.job.result.error_agreement
    assert 0.5 < agree["coverage"] <= 1.0 and agree["spearman_abs_error"] > 0.1
    assert "Error map on the overlap" in w.summary.value and f"{agree['coverage']:.0%}" in w.summary.value


def test_2d_section(registered_section, qtbot):
    viewer, lres, hres = registered_section
    rng = np.random.default_rng(1)
    data = np.array(hres.data) + rng.normal(0, 0.05, hres.data.shape).astype(np.float32)
    box = (slice(96, 128), slice(160, 192))
    data[box] = rng.normal(0.5, 0.3, (32, 32)).astype(np.float32)
    _upscaled_like(viewer, hres, data, name="upscaled section")
    w = QualityWidget(viewer)
    assert w.run()
    _wait(qtbot, w)
    layer = viewer.layers["MS-SSIM: upscaled section"]
    assert layer.ndim == 2 and layer.data.shape == hres.data.shape
    np.testing.assert_allclose(layer.translate, hres.translate, atol=1e-6)
    assert set(w.metrics) == {UPSCALED, CUBIC, RL}
    for row in w.metrics.values():
        assert all(math.isfinite(v) for v in row.values())
    assert set(w.resolution) == {UPSCALED, CUBIC, RL}
    assert w.resolution_plot.figure.axes[1].get_ylabel() == "FRC"
    assert w.resolution[CUBIC]["fwhm_um"] > w.resolution[UPSCALED]["fwhm_um"]
    spot = np.asarray(hres.translate) + np.array([111.5, 175.5]) * np.asarray(hres.scale)
    assert np.all(np.abs(np.asarray(w.regions[0]["centre_um"]) - spot) <= 32.0)
    region = w.jump_to(0)
    np.testing.assert_allclose(viewer.scene.camera.center[1:], region["centre_um"], atol=0.5)


# ------------------------------------------------------------ width, names, numbers


def test_dock_at_the_default_width_shows_every_column_and_wraps_the_summary(registered_viewer, qtbot, misfits):
    from qtpy.QtCore import QPoint

    from napari_resolve._qt.docks import QualityDock

    viewer, lres, hres = registered_viewer
    # The name the upscaling step gives a saved result (long, with the plugin's prefix and the file ending).
    _upscaled_like(viewer, hres, _corrupted(hres, (slice(30, 45),) * 3), name="upscaled: upscaled_foam.tif")
    dock = QualityDock(viewer)
    qtbot.addWidget(dock)
    dock.resize(320, 1600)  # napari's default dock width
    dock.show()
    w = dock.step
    assert w.run()
    _wait(qtbot, w)
    qtbot.wait(50)  # let the layout settle after the tables were filled
    assert dock.width() == 320, dock.minimumWidth()
    inside = dock.viewport().width()
    for table in (w.table, w.resolution_table, w.regions_table):
        # Every title, figure and row title whole (as Qt paints them: text inside the style's padding).
        assert misfits(table) == [], table.horizontalHeaderItem(0).text()
        assert table.mapTo(dock, QPoint(table.width(), 0)).x() <= inside
    label = w.summary.native
    assert len(w.summary.value) > 200 and label.wordWrap()
    assert label.mapTo(dock, QPoint(label.width(), 0)).x() <= inside
    assert label.height() >= label.heightForWidth(label.width())  # every wrapped line shown

    # Short names: the prefix and the file ending go; the full name is in the row tooltip.
    assert "MS-SSIM: upscaled_foam" in viewer.layers and "SSIM: upscaled_foam" in viewer.layers
    assert [w.table.verticalHeaderItem(i).text() for i in range(3)] == ["upscaled", "cubic", "RL"]
    assert "upscaled: upscaled_foam.tif" in w.table.verticalHeaderItem(0).toolTip()
    # One number format per quantity: PSNR 2 decimals, SSIM and MS-SSIM 3, lengths in µm.
    for i in range(3):
        assert re.fullmatch(r"\d+\.\d\d", w.table.item(i, 0).text())
        assert all(re.fullmatch(r"[01]\.\d{3}", w.table.item(i, j).text()) for j in (1, 2))
    assert all(re.fullmatch(r"[01]\.\d{3}", w.regions_table.item(i, 1).text()) for i in range(10))
    assert re.search(r"map 0\.\d{3};", w.summary.value)
    texts = [w.summary.value, w.resolution_heading.text(), w.regions_table.horizontalHeaderItem(0).text(),
             w.result_combo.tooltip, w.resolution_table.verticalHeaderItem(0).toolTip()]
    assert all("µm" in t and not re.search(r"\bum\b", t) for t in texts), texts


def test_short_names_stay_unique(registered_viewer):
    from napari_resolve._qt.quality_widget import short_name

    assert short_name("upscaled: upscaled_foam.tif") == "upscaled_foam"
    assert short_name("upscaled: foam.ome.tiff") == "foam"
    assert short_name("upscaled preview") == "upscaled preview"
    assert short_name("HRES foam 1um") == "HRES foam 1um"
    viewer, lres, hres = registered_viewer
    w = QualityWidget(viewer)
    first = "upscaled: upscaled_foam.tif"
    assert w.map_names(first) == {"ms_ssim_map": "MS-SSIM: upscaled_foam", "ssim_map": "SSIM: upscaled_foam"}
    meta = {"napari_resolve": {"produced": True, "kind": "ms_ssim_map", "result": first}}
    viewer.add_image(np.zeros((4, 4, 4), np.float32), name="MS-SSIM: upscaled_foam", metadata=meta)
    # The same result keeps its names (its maps are updated); another with the same short name is numbered.
    assert w.map_names(first)["ms_ssim_map"] == "MS-SSIM: upscaled_foam"
    assert w.map_names("upscaled_foam.tif") == {
        "ms_ssim_map": "MS-SSIM: upscaled_foam (2)", "ssim_map": "SSIM: upscaled_foam (2)"}


# ------------------------------------------------------------ outlines


def _world_box(layer):
    vertices = np.concatenate([np.asarray(d, float) for d in layer.data])
    world = np.array([layer.data_to_world(v) for v in vertices])
    return world.min(axis=0), world.max(axis=0)


def _hres_box(hres):
    lo = np.asarray(hres.translate) - 0.5 * np.asarray(hres.scale)
    return lo, lo + np.asarray(hres.data.shape) * np.asarray(hres.scale)


def test_hres_and_region_outlines_in_2d_slices_and_3d(registered_viewer, qtbot):
    from napari.layers import Shapes

    viewer, lres, hres = registered_viewer
    far = tuple(np.asarray(hres.translate) + np.array([0.0, 200.0, 0.0]))
    up = _upscaled_like(viewer, hres, _corrupted(hres, (slice(30, 45),) * 3), translate=far)
    before = viewer.dims.range
    viewer.layers.selection.active = hres
    w = QualityWidget(viewer)
    w.baselines_check.value = w.resolution_check.value = False
    # Refused for lying outside the HRES: the message points at the outline, which is now drawn.
    assert not w.run()
    assert "HRES outline" in w.controls.status.text()
    outline = viewer.layers["HRES outline"]
    assert isinstance(outline, Shapes) and is_produced(outline) and len(outline.data) == 1
    lo, hi = _hres_box(hres)
    np.testing.assert_allclose(_world_box(outline)[0][1:], lo[1:], atol=1e-4)
    np.testing.assert_allclose(_world_box(outline)[1][1:], hi[1:], atol=1e-4)
    assert viewer.dims.range == before  # the outline neither widens the world nor changes the step
    assert viewer.layers.selection.active is hres  # and the user's selection (and tools) stay
    # In a 2D view the rectangle is on every z slice through the HRES and on none outside it.
    for z, shown in ((lo[0] - 1.5, False), (lo[0] + 0.5, True), (hi[0] - 0.5, True), (hi[0] + 1.5, False)):
        viewer.dims.set_point(0, z)
        assert (len(outline._view_indices) == 1) == shown, z

    up.translate = tuple(hres.translate)
    assert w.run()
    _wait(qtbot, w)
    assert viewer.layers["HRES outline"] is outline  # redrawn in place, not added again
    region = w.jump_to(0)
    block = viewer.layers["region outline"]
    half = np.asarray(region["size_um"]) / 2
    np.testing.assert_allclose(_world_box(block)[0][1:], (np.asarray(region["centre_um"]) - half)[1:], atol=1e-4)
    np.testing.assert_allclose(_world_box(block)[1][1:], (np.asarray(region["centre_um"]) + half)[1:], atol=1e-4)
    assert len(block._view_indices) == 1  # on the slice the jump went to

    # In 3D both are boxes: twelve edges on the world box.
    viewer.dims.ndisplay = 3
    for layer, (a, b) in ((outline, (lo, hi)), (block, (np.asarray(region["centre_um"]) - half,
                                                        np.asarray(region["centre_um"]) + half))):
        assert len(layer.data) == 6 and len(layer._view_indices) == 6
        np.testing.assert_allclose(_world_box(layer)[0], a, atol=1e-4)
        np.testing.assert_allclose(_world_box(layer)[1], b, atol=1e-4)
    viewer.dims.ndisplay = 2
    assert len(outline.data) == 1 and len(block.data) == 1
    # Viewed along x (z and y displayed): a z-y rectangle, on the x slices through the HRES.
    viewer.dims.order = (2, 0, 1)
    np.testing.assert_allclose(_world_box(outline)[0][:2], lo[:2], atol=1e-4)
    np.testing.assert_allclose(_world_box(outline)[1][:2], hi[:2], atol=1e-4)
    for x, shown in ((lo[2] - 1.5, False), (lo[2] + 0.5, True), (hi[2] + 1.5, False)):
        viewer.dims.set_point(2, x)
        assert (len(outline._view_indices) == 1) == shown, x


def test_outline_of_a_2d_section(registered_section, qtbot):
    viewer, lres, hres = registered_section
    _upscaled_like(viewer, hres, np.array(hres.data), name="upscaled section")
    w = QualityWidget(viewer)
    w.baselines_check.value = w.resolution_check.value = False
    assert w.run()
    _wait(qtbot, w)
    outline = viewer.layers["HRES outline"]
    lo, hi = _hres_box(hres)
    box = _world_box(outline)
    np.testing.assert_allclose(box[0], lo, atol=1e-4)
    np.testing.assert_allclose(box[1], hi, atol=1e-4)
    region = w.jump_to(0)
    half = np.asarray(region["size_um"]) / 2
    box = _world_box(viewer.layers["region outline"])
    np.testing.assert_allclose(box[0], np.asarray(region["centre_um"]) - half, atol=1e-4)
    np.testing.assert_allclose(box[1], np.asarray(region["centre_um"]) + half, atol=1e-4)
