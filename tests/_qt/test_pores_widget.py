"""The Pores widget: several inputs measured side by side on their common region, labels layers, table, plot, CSV."""

import csv

import numpy as np
import pytest

from napari_resolve._qt._layers import is_produced
from napari_resolve._qt.pores_widget import OVERLAP, WHOLE, PoresWidget
from napari_resolve.errors import InputError, ResolveError
from napari_resolve.pores.compare import sanitise


def _wait(qtbot, job, timeout=30_000):
    qtbot.waitUntil(lambda: job.state != "running", timeout=timeout)


def _measure(qtbot, widget, layers, region=None):
    widget.inputs.value = list(layers)
    if region is not None:
        widget.region.value = region
    assert widget.run()
    _wait(qtbot, widget.job)
    assert widget.job.state == "done", widget.job.error


def _row_names(widget):
    return list(widget.table.value["index"])


def _inputs(widget):
    """The table's column titles (one per input, unbroken)."""
    from napari_resolve._qt._forms import column_title

    return [column_title(widget.table.native, j) for j in range(widget.table.native.columnCount())]


def _column(widget, row_name, convert=float):
    """{input layer name: value} of the table's row ``row_name`` (one column per input, in the order measured)."""
    value = widget.table.value
    i = _row_names(widget).index(row_name)
    return {name: convert(cell) for name, cell in zip(widget.results, value["data"][i])}


def _box(layer):
    """The world box (lo, hi) in um of a layer's voxel edges."""
    t, s, n = (np.asarray(v, float) for v in (layer.translate, layer.scale, layer.data.shape))
    return t - s / 2, t + (n - 0.5) * s


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def measured(phantom_viewer, qtbot):
    """The 3D sample with LRES and HRES measured as whole layers: (widget, viewer, lres, hres).

    Registration does not matter to what these tests check, and takes seconds.
    """
    viewer, lres, hres = phantom_viewer
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    _measure(qtbot, widget, [lres, hres], WHOLE)
    return widget, viewer, lres, hres


def test_lres_and_hres_measured_side_by_side(registered_viewer, qtbot, tmp_path):
    viewer, lres, hres = registered_viewer
    before = {layer.name: (np.array(layer.data), tuple(layer.scale), tuple(layer.translate)) for layer in (lres, hres)}
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    # The sample's LRES and HRES are picked by default, and measured where both overlap.
    assert {layer.name for layer in widget.inputs.value} == {lres.name, hres.name}
    assert widget.region.value == OVERLAP
    records = []
    widget.job.progress.connect(records.append)
    _measure(qtbot, widget, [lres, hres])

    # Both are measured on the HRES box (the HRES lies inside the LRES).
    lo, hi = _box(hres)
    assert np.any(np.asarray(hres.translate) != 0)  # registered: a real translate was carried over
    for name in (lres.name, hres.name):
        np.testing.assert_allclose(widget.regions[name], (lo, hi))
    # The HRES whole, lying over itself.
    labels = viewer.layers[f"pores: {hres.name}"]
    assert labels.data.shape == hres.data.shape
    np.testing.assert_allclose(labels.translate, hres.translate)
    # The LRES cropped to the voxels whose centres lie in the HRES box: 76 um / 3 um -> 25 a side.
    labels = viewer.layers[f"pores: {lres.name}"]
    assert labels.data.shape == (25, 25, 25)
    first = np.asarray(labels.translate)
    last = first + 3 * (np.asarray(labels.data.shape) - 1)
    assert np.all(first >= lo) and np.all(first < lo + 3)
    assert np.all(last <= hi) and np.all(last > hi - 3)
    # ... still on the LRES grid, so the labels lie exactly over the LRES voxels they came from.
    start = first / 3
    np.testing.assert_allclose(start, np.round(start), atol=1e-9)
    for layer in (lres, hres):
        labels = viewer.layers[f"pores: {layer.name}"]
        assert type(labels).__name__ == "Labels" and is_produced(labels)
        np.testing.assert_allclose(labels.scale, layer.scale)
        assert labels.data.max() == widget.results[layer.name].count
        assert labels.metadata["napari_resolve"]["region_um"] == widget.regions[layer.name]

    # Progress counts over both inputs and names them.
    totals = {r.total for r in records}
    assert totals == {200}
    assert [r.step for r in records] == sorted(r.step for r in records)
    assert any(lres.name in r.message for r in records) and any(hres.name in r.message for r in records)

    # The table: one column per input.
    assert _inputs(widget) == [lres.name, hres.name]
    porosity = _column(widget, "Porosity (%)")
    count = _column(widget, "Pores")
    density = _column(widget, "Pores/mm³")
    assert all(0 < p < 100 for p in porosity.values())
    # On the same piece of sample the porosities agree (whole layers: 22 % vs 32 %).
    assert abs(porosity[lres.name] - porosity[hres.name]) < 4
    assert all(n > 0 for n in count.values())
    assert all(0 < s <= 1 for s in _column(widget, "Mean sphericity").values())
    assert _column(widget, "Voxel (µm)", str) == {lres.name: "3", hres.name: "1"}  # isotropic: one number
    # The LRES misses the small pores: the HRES finds many more per volume, and smaller ones.
    assert density[hres.name] > 2 * density[lres.name]
    d_lres = widget.results[lres.name].table["diameter_um"]
    d_hres = widget.results[hres.name].table["diameter_um"]
    assert np.mean(d_hres < 7) > 0.25 and np.mean(d_lres < 7) < 0.05

    # The HRES porosity matches the phantom's truth on the HRES sub-volume.
    from napari_resolve.phantom import make_phantom

    meta = hres.metadata["phantom"]
    ph = make_phantom(64, 3, seed=0)
    np.testing.assert_array_equal(ph.hres, hres.data)  # the same phantom as the sample
    start = meta["hres_start_fine_voxels"]
    truth = ph.labels[tuple(slice(k, k + n) for k, n in zip(start, meta["hres_shape"]))] > 0
    assert abs(porosity[hres.name] - 100 * truth.mean()) < 3
    assert abs(porosity[hres.name] - 100 * meta["params"]["porosity_target"]) < 5

    # The table says where it measured; so does the status.
    text = widget.region_label.value
    assert text.startswith("Measured on region z ") and "µm" in text
    assert f"z {lo[0]:.1f}–{hi[0]:.1f}" in text and f"x {lo[2]:.1f}–{hi[2]:.1f}" in text
    assert widget.controls.status.text().startswith("Done on the common region.")
    rows = _read_csv(widget.export_csv(tmp_path / "foam.csv")[0])
    for row in rows:
        np.testing.assert_allclose([float(v) for v in row["region_lo_um"].split()], lo, atol=1e-4)
        np.testing.assert_allclose([float(v) for v in row["region_hi_um"].split()], hi, atol=1e-4)

    # The plot: one curve per input, labelled with units.
    ax = widget.plot.figure.axes[0]
    assert len(ax.patches) == 2  # ax.stairs draws one StepPatch per input
    legend = [t.get_text() for t in widget.plot.figure.legends[0].get_texts()]
    assert any(lres.name in t for t in legend) and any(hres.name in t for t in legend)
    assert "µm" in ax.get_xlabel() and "%" in ax.get_ylabel()
    for patch in ax.patches:  # percentages of each input's own pores
        assert patch.get_data().values.sum() == pytest.approx(100)
    # Weighted by volume, each distribution moves to larger pores.
    widget.weighting.value = "% of pore volume"
    ax = widget.plot.figure.axes[0]
    assert len(ax.patches) == 2 and "volume" in ax.get_ylabel()
    for patch, result in zip(ax.patches, widget.results.values()):
        values, edges = patch.get_data().values, patch.get_data().edges
        assert values.sum() == pytest.approx(100)
        centres = (edges[:-1] + edges[1:]) / 2
        assert (values * centres).sum() / 100 > np.mean(result.table["diameter_um"])

    # The user's layers are untouched.
    for layer in (lres, hres):
        data, scale, translate = before[layer.name]
        np.testing.assert_array_equal(layer.data, data)
        assert tuple(layer.scale) == scale and tuple(layer.translate) == translate


def test_csv_export(measured, tmp_path):
    widget, viewer, lres, hres = measured
    path = tmp_path / "foam.csv"
    written = widget.export_csv(path)
    rows = _read_csv(path)
    assert [r["name"] for r in rows] == [lres.name, hres.name]
    for row, result in zip(rows, widget.results.values()):
        assert float(row["porosity_percent"]) == pytest.approx(100 * result.porosity)
        assert int(row["pore_count"]) == result.count
        assert float(row["mean_diameter_um"]) == pytest.approx(np.mean(result.table["diameter_um"]))
        assert float(row["voxel_x_um"]) == result.voxel_um[-1]
        assert row["region_lo_um"] == row["region_hi_um"] == ""  # whole layers
        per_pore = tmp_path / row["per_pore_file"]
        assert per_pore.name == f"foam_{sanitise(row['name'])}.csv"
        pores = _read_csv(per_pore)
        assert len(pores) == result.count and "diameter_um" in pores[0]
    assert written == [path, tmp_path / f"foam_{sanitise(lres.name)}.csv", tmp_path / f"foam_{sanitise(hres.name)}.csv"]
    assert "foam.csv" in widget.controls.status.text()

    # Again without overwrite: refused, files unchanged; with it: rewritten.
    content = path.read_bytes()
    with pytest.raises(ResolveError, match="already exist"):
        widget.export_csv(path)
    assert path.read_bytes() == content
    path.write_text("old")
    widget.export_csv(path, overwrite=True)
    assert len(_read_csv(path)) == 2

    # A clash with one per-input file alone refuses the whole export.
    clash = tmp_path / f"other_{sanitise(lres.name)}.csv"
    clash.write_text("keep me")
    with pytest.raises(ResolveError, match="already exist"):
        widget.export_csv(tmp_path / "other")  # ".csv" is added
    assert clash.read_text() == "keep me" and not (tmp_path / "other.csv").exists()


def test_rerun_updates_layers_and_rows(measured, qtbot):
    widget, viewer, lres, hres = measured
    n_layers = len(viewer.layers)
    first = viewer.layers[f"pores: {hres.name}"]
    widget.min_diameter.value = 8.0  # fewer, larger pores
    count_before = widget.results[hres.name].count
    _measure(qtbot, widget, [lres, hres])
    assert len(viewer.layers) == n_layers
    assert viewer.layers[f"pores: {hres.name}"] is first
    assert _inputs(widget) == [lres.name, hres.name]
    assert widget.results[hres.name].count < count_before
    assert first.data.max() == widget.results[hres.name].count
    # A run with one input shows only it.
    _measure(qtbot, widget, [hres])
    assert _inputs(widget) == [hres.name]
    assert len(widget.plot.figure.axes[0].patches) == 1


def test_no_selection_is_refused(section_viewer, qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    viewer, *_ = section_viewer
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    n_layers = len(viewer.layers)
    widget.inputs.value = []
    assert not widget.run()
    assert widget.job.state == "idle" and len(viewer.layers) == n_layers
    assert shown and "Select at least one image layer" in shown[0]
    assert "Select at least one" in widget.controls.status.text()
    with pytest.raises(InputError, match="measure pores first"):
        widget.export_csv("unused.csv")


def test_fixed_threshold_outside_range_is_refused(section_viewer, qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    viewer, lres, _hres = section_viewer
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    widget.inputs.value = [lres]
    widget.method.value = "Fixed grey value"
    widget.grey.value = 50.0
    assert not widget.run()
    assert lres.name in shown[0] and "range" in shown[0]
    widget.grey.value = 0.55  # near Otsu's value on this sample
    assert widget.run()
    _wait(qtbot, widget.job)
    assert widget.job.state == "done" and widget.results[lres.name].threshold == pytest.approx(0.55)


def test_grey_value_shows_the_decimals_the_images_grey_range_needs(section_viewer, qtbot):
    viewer, lres, _hres = section_viewer
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    widget.inputs.value = [lres]  # grey values about 0..1
    assert widget.grey.native.text() == "0.50"
    widget.grey.value = 0.55
    assert widget.grey.native.text() == "0.55" and widget.grey.value == pytest.approx(0.55)
    counts = viewer.add_image(np.linspace(0, 60000, 64 * 64).reshape(64, 64), name="counts 16 bit")
    widget.inputs.value = [counts]
    widget.grey.value = 30000
    assert widget.grey.native.text() == "30000"


def test_selection_follows_the_layer_list(section_viewer, qtbot):
    viewer, lres, hres = section_viewer
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    widget.inputs.value = [hres]
    hres.name = "HRES renamed"
    assert [layer.name for layer in widget.inputs.value] == ["HRES renamed"]
    extra = viewer.add_image(np.zeros((8, 8), np.float32), name="MS-SSIM map: test")
    assert extra not in widget.inputs.choices and extra not in widget.inputs.value
    viewer.layers.remove(hres)
    assert widget.inputs.value == [] and hres not in widget.inputs.choices
    # A fresh widget picks the LRES, and does not list the map either.
    fresh = PoresWidget(viewer)
    qtbot.addWidget(fresh)
    assert extra not in fresh.inputs.choices and [layer.name for layer in fresh.inputs.value] == [lres.name]


def test_section_2d(registered_section, qtbot, tmp_path):
    viewer, lres, hres = registered_section
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    _measure(qtbot, widget, [lres, hres])
    lo, hi = _box(hres)
    for layer in (lres, hres):
        labels = viewer.layers[f"pores: {layer.name}"]
        assert labels.ndim == 2
        np.testing.assert_allclose(labels.scale, layer.scale)
        # Cropped to the HRES field: voxel centres inside it, within one voxel of its edges.
        first = np.asarray(labels.translate)
        last = first + np.asarray(labels.scale) * (np.asarray(labels.data.shape) - 1)
        assert np.all(first >= lo) and np.all(first < lo + labels.scale)
        assert np.all(last <= hi) and np.all(last > hi - labels.scale)
    assert viewer.layers[f"pores: {hres.name}"].data.shape == hres.data.shape
    assert viewer.layers[f"pores: {lres.name}"].data.shape == (64, 64)  # 256 um at 4 um
    assert "region y " in widget.region_label.value and "z " not in widget.region_label.value
    assert "Mean circularity" in _row_names(widget) and "Pores/mm²" in _row_names(widget)
    density = _column(widget, "Pores/mm²")
    assert density[hres.name] > 2 * density[lres.name]
    assert all(0 < p < 100 for p in _column(widget, "Porosity (%)").values())
    assert len(widget.plot.figure.axes[0].patches) == 2
    widget.weighting.value = "% of pore volume"  # areas in 2D
    assert widget.plot.figure.axes[0].get_ylabel() == "% of pore area"
    rows = _read_csv(widget.export_csv(tmp_path / "section.csv")[0])
    assert len(rows) == 2 and "mean_circularity" in rows[0] and rows[0]["voxel_z_um"] == ""
    assert len(rows[0]["region_lo_um"].split()) == 2


def test_stop_keeps_the_widget_usable(section_viewer, qtbot):
    viewer, lres, hres = section_viewer
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    widget.inputs.value = [lres, hres]
    assert widget.run()
    widget.controls.stop()  # stops at the first record, before any input is finished
    _wait(qtbot, widget.job)
    assert widget.job.state == "stopped"
    assert "stopped" in widget.controls.status.text()
    assert not any(layer.name.startswith("pores:") for layer in viewer.layers)
    assert not widget.export_button.enabled
    _measure(qtbot, widget, [hres])
    assert list(widget.results) == [hres.name] and widget.export_button.enabled


def test_whole_layers_measures_each_full_extent(registered_viewer, qtbot):
    viewer, lres, hres = registered_viewer
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    _measure(qtbot, widget, [lres, hres], WHOLE)
    for layer in (lres, hres):
        labels = viewer.layers[f"pores: {layer.name}"]
        assert labels.data.shape == layer.data.shape
        np.testing.assert_allclose(labels.translate, layer.translate)
        assert widget.regions[layer.name] is None
    # The whole 192 um LRES field is less porous than the 76 um the HRES sees: not comparable.
    porosity = _column(widget, "Porosity (%)")
    assert porosity[hres.name] - porosity[lres.name] > 6
    assert widget.region_label.value == "Measured on whole layers."
    assert widget.controls.status.text().startswith("Done on whole layers.")
    # Back to the overlap: the same labels layers are updated, now cropped.
    n_layers = len(viewer.layers)
    _measure(qtbot, widget, [lres, hres], OVERLAP)
    assert len(viewer.layers) == n_layers + 1  # and the outline of the common box
    assert viewer.layers[f"pores: {lres.name}"].data.shape == (25, 25, 25)


def test_inputs_that_do_not_overlap_are_refused(registered_viewer, qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_error", shown.append)
    viewer, lres, hres = registered_viewer
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    widget.inputs.value = [lres, hres]
    n_layers = len(viewer.layers)

    hres.translate = (1000.0, 1000.0, 1000.0)  # far outside the LRES field
    assert not widget.run()
    assert widget.job.state == "idle" and len(viewer.layers) == n_layers
    message = shown[-1]
    assert lres.name in message and hres.name in message
    assert "do not overlap" in message and "Pick inputs that overlap" in message
    assert "measure whole inputs instead ('Region')" in message  # the parameter named by the form's label

    # Overlapping by 5 um along x: less than 4 LRES voxels (12 um).
    hres.translate = (30.0, 60.0, 186.0)  # x edges 185.5.. against the LRES's ..190.5
    assert not widget.run()
    assert "only 5 µm along x" in shown[-1] and "whole inputs" in shown[-1]

    # A 2D image and a 3D volume have no common region.
    flat = viewer.add_image(np.random.default_rng(0).random((32, 32), dtype=np.float32), name="flat")
    hres.translate = (30.0, 60.0, 20.0)
    widget.inputs.value = [lres, flat]
    assert not widget.run()
    assert "mix 2D images and 3D volumes" in shown[-1]

    # Alone, or as whole layers, the far HRES is measured.
    widget.inputs.value = [hres]
    hres.translate = (1000.0, 1000.0, 1000.0)
    assert widget.run()
    _wait(qtbot, widget.job)
    assert widget.job.state == "done" and widget.regions == {hres.name: None}
    assert viewer.layers[f"pores: {hres.name}"].data.shape == hres.data.shape


def test_a_lazy_layer_is_cropped_before_it_is_read(registered_viewer, qtbot, monkeypatch):
    import napari_resolve._qt.pores_widget as module

    da = pytest.importorskip("dask.array")
    viewer, lres, hres = registered_viewer
    lazy = viewer.add_image(da.from_array(lres.data, chunks=16), name="LRES lazy", scale=lres.scale)
    started = []
    real = module.iter_compare_pores
    monkeypatch.setattr(module, "iter_compare_pores", lambda plan: started.append(plan) or real(plan))
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    _measure(qtbot, widget, [lres, lazy, hres])
    # The plan, made on the main thread, holds only the crop of the dask array, read into memory.
    (item,) = [item for item in started[0].items if item.name == lazy.name]
    assert isinstance(item.plan.image, np.ndarray) and item.plan.shape == (25, 25, 25)
    # ... and measures exactly what the same data in memory gives.
    np.testing.assert_array_equal(widget.results[lazy.name].labels, widget.results[lres.name].labels)
    translates = [viewer.layers[f"pores: {layer.name}"].translate for layer in (lazy, lres)]
    np.testing.assert_allclose(*translates)


# ------------------------------------------------------------------ issue 14: sample choice, table, plot, layers


def _network(shape=(40, 64, 64), seed=0):
    """A connected pore network filling the field and touching every face: (image, true pore fraction).

    Smoothed noise thresholded at its median: about half pore (grey 0), half solid (grey 1), one network.
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.standard_normal(shape), 2)
    pores = field < np.median(field)
    image = np.where(pores, 0.2, 0.8).astype(np.float32) + rng.normal(0, 0.03, shape).astype(np.float32)
    return image, float(pores.mean())


def test_connected_network_warns_with_auto_and_whole_field_is_right(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image, truth = _network()
    layer = viewer.add_image(image, name="network", scale=(2.0, 2.0, 2.0))
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.sample.value == "auto (find the sample)"
    assert widget.warning_label.native.isHidden()

    _measure(qtbot, widget, [layer])
    result = widget.results[layer.name]
    # The automatic mask takes the network for air: almost no pores, and it says so.
    assert result.count <= 5 and result.porosity < 0.15 < truth - 0.3
    assert not widget.warning_label.native.isHidden()
    text = widget.warning_label.value
    assert "network: " in text and "leaves out" in text and "'Sample'" in text and "sample_mask" not in text
    assert "See the warning" in widget.controls.status.text()
    # At a dock's default width the warning wraps across the dock, neither widening it nor a word a line.
    assert widget.minimumSizeHint().width() <= 320
    widget.resize(320, 1200)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.wait(50)
    assert widget.warning_label.native.width() > 250

    widget.sample.value = "whole field"
    _measure(qtbot, widget, [layer])
    result = widget.results[layer.name]
    assert abs(result.porosity - truth) < 0.03 and result.sample_mask.all()
    # The network, split into pores, is mostly cut by the border: those pores show in their own layer.
    cut = viewer.layers[f"cut pores: {layer.name}"].data
    assert np.count_nonzero(cut) > 0.5 * np.count_nonzero(result.pore_mask)
    assert widget.warning_label.native.isHidden() and "warning" not in widget.controls.status.text()
    assert abs(_column(widget, "Porosity (%)")[layer.name] - 100 * truth) < 3


def test_sample_from_a_shapes_or_labels_layer_on_each_input_grid(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image, _ = _network((8, 40, 50))
    fine = viewer.add_image(image, name="fine", scale=(1.0, 2.0, 2.0), translate=(0.0, 10.0, 10.0))
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    # Only the user's Labels and Shapes layers are offered, after auto and whole field.
    outline = viewer.add_shapes([np.array([[30.0, 30.0], [30.0, 90.0], [70.0, 90.0], [70.0, 30.0]])],
                                shape_type="rectangle", name="outline")
    assert [c for c in widget.sample.choices if not isinstance(c, str)] == [outline]
    widget.sample.value = outline
    _measure(qtbot, widget, [fine])
    # Voxel centres 10 + 2 j inside y 30..70 (j 10..30) and x 30..90 (j 10..40), on every slice.
    sample = widget.results[fine.name].sample_mask
    expected = np.zeros(image.shape, bool)
    expected[:, 10:31, 10:41] = True
    np.testing.assert_array_equal(sample, expected)

    # A Labels layer on a coarser grid: each fine voxel takes the label under its centre.
    labels = np.zeros((2, 10, 10), np.int32)
    labels[:, 2:6, 3:9] = 1  # world y 10..26 + 4 * (2..5) edges, x 10..26 + 4 * (3..8)
    mask_layer = viewer.add_labels(labels, name="drawn", scale=(4.0, 4.0, 4.0), translate=(1.5, 12.0, 12.0))
    widget.sample.value = mask_layer
    _measure(qtbot, widget, [fine])
    sample = widget.results[fine.name].sample_mask
    y = 10 + 2 * np.arange(image.shape[1])
    x = 10 + 2 * np.arange(image.shape[2])
    in_y = (y >= 12 + 4 * 2 - 2) & (y < 12 + 4 * 5 + 2)
    in_x = (x >= 12 + 4 * 3 - 2) & (x < 12 + 4 * 8 + 2)
    np.testing.assert_array_equal(sample[3], in_y[:, None] & in_x[None, :])
    assert sample[3].any() and not sample.all()
    # The measured box outline is ours and never offered as a sample.
    assert all(c is not viewer.layers[name] for c in widget.sample.choices
               for name in [n.name for n in viewer.layers if n.name.startswith("pores:")])


def test_images_list_offers_scans_and_results_only(section_viewer, qtbot):
    from napari_resolve._qt._layers import add_or_update

    viewer, lres, hres = section_viewer
    data = np.zeros((16, 16), np.float32)
    ms_ssim = add_or_update(viewer, "MS-SSIM map: upscaled", data, metadata={"kind": "ms_ssim_map", "result": "x"})
    preview = add_or_update(viewer, "preview", data, metadata={"grid": {}})
    result = add_or_update(viewer, "upscaled: foam.tif", data, metadata={"grid": {}, "source": "/tmp/foam.tif"})
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.inputs.choices == (lres, hres, result)
    assert ms_ssim not in widget.inputs.choices and preview not in widget.inputs.choices
    # Layers added later are filtered the same way.
    later = add_or_update(viewer, "SSIM map: upscaled", data, metadata={"kind": "ssim_map"})
    assert later not in widget.inputs.choices and result in widget.inputs.choices


def _upscaled_result(viewer, like, name="upscaled: upscaled_foam.zarr"):
    """A layer as the upscale step opens a result it wrote: "upscaled: <file>", marked with its source."""
    from napari_resolve._qt._layers import KEY

    return viewer.add_image(np.asarray(like.data), scale=like.scale, translate=like.translate, name=name,
                            metadata={KEY: {"produced": True, "source": f"/tmp/{name.split(': ')[-1]}"}})


def test_table_reads_at_the_default_dock_width(measured, qtbot, misfits):
    import re

    widget, viewer, lres, hres = measured
    # Three inputs, as a user compares them: the LRES, an upscaled result and the HRES.
    upscaled = _upscaled_result(viewer, hres)
    _measure(qtbot, widget, [lres, upscaled, hres], WHOLE)
    widget.resize(320, 900)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.wait(50)  # let the layout settle
    table = widget.table.native
    header = table.horizontalHeader()
    assert widget.minimumSizeHint().width() <= 320
    # Every input's column is inside the viewport: nothing to scroll to.
    assert header.length() <= table.viewport().width()
    assert table.horizontalScrollBar().maximum() == 0
    metrics = table.fontMetrics()
    value = widget.table.value
    for j in range(table.columnCount()):
        width = table.columnWidth(j)
        for row in value["data"]:
            assert metrics.horizontalAdvance(row[j]) + 6 <= width, (row[j], width)
    names = table.verticalHeader()
    for name in value["index"]:
        assert metrics.horizontalAdvance(name) <= names.width()
    # The columns are titled by the inputs' short names (the full name in the tooltip)...
    assert sorted(_inputs(widget)) == sorted([lres.name, "upscaled_foam", hres.name])
    column = _inputs(widget).index("upscaled_foam")
    assert table.horizontalHeaderItem(column).toolTip().startswith("upscaled: upscaled_foam.zarr:")
    # ...each on as many lines as it needs, broken at a space or after "_", every line shown whole.
    for j, title in enumerate(_inputs(widget)):
        shown = table.horizontalHeaderItem(j).text()
        assert re.sub(r"(?<=_)\n", "", shown).replace("\n", " ") == title, shown
    assert misfits(table) == []
    # Every row is shown: the table does not scroll vertically either.
    assert table.verticalScrollBar().maximum() == 0
    # The status line and the plot name the inputs the same way.
    status = widget.controls.status.text()
    assert "upscaled_foam: " in status and "upscaled: upscaled_foam.zarr" not in status
    legend = [t.get_text() for t in widget.plot.figure.legends[0].get_texts()]
    assert legend[column].startswith("upscaled_foam (n=") and len(legend) == 3


def test_plot_legend_lies_outside_the_axes(measured, qtbot):
    widget, *_ = measured
    widget.resize(320, 900)
    widget.show()
    qtbot.waitExposed(widget)
    figure = widget.plot.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (legend,) = figure.legends
    axes_box = figure.axes[0].get_window_extent(renderer)
    legend_box = legend.get_window_extent(renderer)
    assert not axes_box.overlaps(legend_box)
    assert legend_box.y1 <= axes_box.y0  # below the axes
    assert figure.axes[0].get_legend() is None


def test_cut_pores_and_measured_box_layers(registered_viewer, qtbot):
    import napari

    viewer, lres, hres = registered_viewer
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    _measure(qtbot, widget, [lres, hres])
    for layer in (lres, hres):
        result = widget.results[layer.name]
        counted = viewer.layers[f"pores: {layer.name}"]
        cut = viewer.layers[f"cut pores: {layer.name}"]
        assert is_produced(cut) and isinstance(cut, napari.layers.Labels)
        np.testing.assert_allclose(cut.translate, counted.translate)
        np.testing.assert_allclose(cut.scale, counted.scale)
        # Counted and cut pores are disjoint and together make up the pore phase.
        assert cut.data.max() > 0 and not np.any((cut.data > 0) & (counted.data > 0))
        np.testing.assert_array_equal((cut.data > 0) | (counted.data > 0), result.pore_mask)
        # Cut pores touch the border of the measured box.
        ids = set(np.unique(np.concatenate([cut.data[0].ravel(), cut.data[-1].ravel(), cut.data[:, 0].ravel(),
                                            cut.data[:, -1].ravel(), cut.data[:, :, 0].ravel(),
                                            cut.data[:, :, -1].ravel()]))) - {0}
        assert len(ids) > 0.5 * cut.data.max()
    box = viewer.layers["pores: measured box"]
    assert isinstance(box, napari.layers.Shapes) and is_produced(box) and box.shape_type == ["rectangle"]
    lo, hi = _box(hres)
    corners = np.asarray(box.data[0])
    np.testing.assert_allclose(corners.min(axis=0), lo[-2:], atol=1e-6)
    np.testing.assert_allclose(corners.max(axis=0), hi[-2:], atol=1e-6)
    # Whole layers have no common box: the outline goes; the cut pores stay per input.
    _measure(qtbot, widget, [lres, hres], WHOLE)
    assert "pores: measured box" not in viewer.layers
    assert viewer.layers[f"cut pores: {lres.name}"].data.shape == lres.data.shape
    # With edge-kill off every pore is counted: no cut-pores layer.
    widget.edge.value = False
    _measure(qtbot, widget, [hres], WHOLE)
    assert f"cut pores: {hres.name}" not in viewer.layers


def test_pores_layers_carry_the_short_name_of_an_upscaled_result(section_viewer, qtbot):
    from napari_resolve._qt._layers import KEY

    viewer, lres, _hres = section_viewer
    # As the upscale step opens a result it wrote: "upscaled: <file name>", marked as a result with a source.
    result = viewer.add_image(np.array(lres.data), scale=lres.scale, name="upscaled: section_up.ome.tif",
                              metadata={KEY: {"produced": True, "source": "/tmp/section_up.ome.tif"}})
    widget = PoresWidget(viewer)
    qtbot.addWidget(widget)
    _measure(qtbot, widget, [lres, result], region="whole layers")
    assert "pores: section_up" in viewer.layers and "pores: upscaled: section_up.ome.tif" not in viewer.layers
    assert f"pores: {lres.name}" in viewer.layers
    assert set(widget.results) == {lres.name, result.name}  # the table still names the layers
