"""Field-test defects of the command line (issue 13): each bad input is one clear line, exit status 2,
and nothing the user had is touched."""

from napari_resolve.cli import main


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_hres_coarser_than_the_lres_is_refused_naming_which_is_which(foam_dir, tmp_path, capsys):
    reg = tmp_path / "reg.json"
    code, out, err = _run(capsys, "register", foam_dir / "lres.tif", foam_dir / "hres.tif",
                          "--hres-voxel", "6", "-o", reg)
    assert code == 2 and out == "" and not reg.exists()
    assert err.count("\n") == 1 and "HRES voxels (6 um, --hres-voxel)" in err
    assert "LRES voxels (3 um, --lres-voxel)" in err and "swapped" in err


def test_predict_refuses_non_positive_and_absurd_tiles(foam_dir, tiny_model, tmp_path, capsys):
    for tile in ("0", "-8", "2"):  # a tile larger than the region is one tile of the region
        out = tmp_path / f"up{tile}.tif"
        code, stdout, err = _run(capsys, "predict", tiny_model, foam_dir / "lres.tif", "-o", out, "--tile", tile)
        assert code == 2 and stdout == "" and not out.exists(), (tile, err)
        assert err.count("\n") == 1 and "--tile" in err, err
