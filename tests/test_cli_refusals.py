"""Field-test defects of the command line (issue 13): each bad input is one clear line, exit status 2,
and nothing the user had is touched."""

import pytest

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


@pytest.mark.parametrize("name, status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_stops_like_ctrl_c_and_leaves_no_partial_output(foam_dir, tiny_model, tmp_path, name, status):
    """What a job scheduler or `kill` sends (SIGTERM), or a closed terminal (SIGHUP): the temporary
    output is removed and the command says it stopped, with the status a shell gives (128 + signal)."""
    import signal
    import subprocess
    import sys

    if not hasattr(signal, name):
        pytest.skip(f"no {name} here")
    out = tmp_path / "up.tif"
    entry = "import sys; from napari_resolve.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", entry, "predict", str(tiny_model), str(foam_dir / "lres.tif"),
           "-o", str(out), "--tile", "32", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:  # wait for the first tile: the partial file exists by then
        seen.append(line)
        if line.startswith("[1/"):
            break
    assert any(p.name.startswith(".up.tif") for p in tmp_path.iterdir()), (seen, list(tmp_path.iterdir()))
    proc.send_signal(getattr(signal, name))
    stdout, rest = proc.communicate(timeout=120)
    assert proc.returncode == status, (proc.returncode, rest)
    assert stdout == "" and f"stopped by {name}" in rest and "Traceback" not in rest
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_is_a_file_or_takes_no_file_is_one_line_before_work(foam_dir, tiny_model, tmp_path,
                                                                                   capsys):
    """`-o afile/o.tif` names the file that is no folder; a folder that accepts no new file (here /proc; a
    read-only mount alike) is refused by the output check, not by a raw errno after the work."""
    from pathlib import Path

    (tmp_path / "afile").write_text("notes")
    code, stdout, err = _run(capsys, "predict", tiny_model, foam_dir / "lres.tif", "-o", tmp_path / "afile" / "o.tif")
    assert code == 2 and stdout == "" and err.count("\n") == 1
    assert "afile is a file, not a folder" in err and "--output" in err and "does not exist" not in err
    if Path("/proc/self").is_dir():
        code, stdout, err = _run(capsys, "predict", tiny_model, foam_dir / "lres.tif", "-o", "/proc/o.tif")
        assert code == 2 and err.count("\n") == 1, err
        assert "The folder /proc does not accept new files" in err and "--output" in err and "Errno" not in err
    assert (tmp_path / "afile").read_text() == "notes"


def test_an_lres_with_nan_is_named_as_the_cause_not_the_model(foam_dir, tiny_model, tmp_path, capsys):
    """Predicting on the CPU from an LRES with one NaN voxel: the message names the LRES, and does not
    suggest the CPU it already ran on."""
    import numpy as np

    from napari_resolve.io import read_volume, write_volume

    lres = read_volume(foam_dir / "lres.tif")
    data = np.asarray(lres.data, dtype=np.float32).copy()
    data[5, 6, 7] = np.nan
    bad = write_volume(tmp_path / "lres_nan.tif", data, lres.voxel_um)
    out = tmp_path / "up.tif"
    code, stdout, err = _run(capsys, "predict", tiny_model, bad, "-o", out, "--device", "cpu")
    last = err.strip().splitlines()[-1]  # after the "Upscaling ..." log line
    assert code == 2 and stdout == "" and last.startswith("napari-resolve predict: error: The LRES holds NaN"), err
    assert "Replace them in the LRES" in last and "Run on the CPU" not in err and "train" not in last
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lres_nan.tif"]
