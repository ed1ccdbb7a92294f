"""The `mmdenoise data ...` commands, run as a user would, and their error reporting."""
import json
import subprocess
import sys


from mmdenoise.data import read_mmrec


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mmdenoise.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_synth_noise_info_export_bench(tmp_path):
    out = _run("data", "synth", "--preset", "tiny", "--seed", "1", "--out", str(tmp_path / "tiny"))
    assert out.returncode == 0, out.stderr
    noised = _run("data", "noise", str(tmp_path / "tiny"), "--add", "0.1", "--swap", "image:0.05",
                  "--seed", "2", "--out", str(tmp_path / "noisy"))
    assert noised.returncode == 0, noised.stderr
    ds = read_mmrec(tmp_path / "noisy")
    assert ds.noise.noisy_interactions.sum() == ds.noise.spec["counts"]["added"] > 0
    assert ds.noise.noisy_features["image"].sum() == 10
    again = _run("data", "noise", str(tmp_path / "tiny"), "--add", "0.2", "--out", str(tmp_path / "noisy"))
    assert again.returncode == 2 and "already exists (pass overwrite=True, or --overwrite" in again.stderr
    assert read_mmrec(tmp_path / "noisy").fingerprint == ds.fingerprint          # the refused call changed nothing
    replaced = _run("data", "noise", str(tmp_path / "tiny"), "--add", "0.2", "--out", str(tmp_path / "noisy"),
                    "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert read_mmrec(tmp_path / "noisy").noise.spec["add"] == 0.2
    noised = _run("data", "noise", str(tmp_path / "tiny"), "--add", "0.1", "--swap", "image:0.05",
                  "--seed", "2", "--out", str(tmp_path / "noisy"), "--overwrite")
    info = _run("data", "info", str(tmp_path / "noisy"))
    assert info.returncode == 0 and "noisy interactions" in info.stdout and "4096" in info.stdout
    exported = _run("data", "export", str(tmp_path / "noisy"), "--out", str(tmp_path / "copy"))
    assert exported.returncode == 0, exported.stderr
    assert read_mmrec(tmp_path / "copy").fingerprint == ds.fingerprint
    bench = _run("bench", "-d", str(tmp_path / "tiny"), "-m", "lightgcn", "--epochs", "2", "--json")
    assert bench.returncode == 0, bench.stderr
    result = json.loads(bench.stdout)
    assert result["seconds_per_epoch"] > 0 and result["eval_seconds"] > 0 and result["peak_rss_mb"] > 0


def test_errors_are_one_clear_line(tmp_path):
    bad = _run("data", "noise", str(tmp_path / "missing"), "--add", "0.1", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "is neither a folder nor a registered dataset" in bad.stderr
    assert "Traceback" not in bad.stderr
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "d.inter").write_text("userID\titemID\tx_label\n0\t1\t0\n0\tx\t1\n")
    info = _run("data", "info", str(folder))
    assert info.returncode == 2 and "d.inter: row 2, field itemID: not a number: 'x'" in info.stderr
    unknown = _run("data", "synth", "--preset", "huge", "--out", str(tmp_path / "h"))
    assert unknown.returncode == 2 and "unknown preset 'huge'" in unknown.stderr


def test_build_options_are_refused_for_datasets_they_do_not_apply_to(tmp_path):
    for args, message in ((("ml-100k", "--min-rating", "4"), "--min-rating applies to ml-1m, book-crossing only"),
                          (("book-crossing", "--chronological"), "--chronological applies to ml-100k, ml-1m only"),
                          (("ml-1m", "--kg"), "--kg applies to ml-100k only"),
                          (("ml-10m",), "unknown dataset 'ml-10m' (did you mean 'ml-1m'?); buildable: ml-100k, ml-1m"),
                          (("imdb",), "unknown dataset 'imdb'; buildable: ml-100k, ml-1m, book-crossing")):
        out = _run("data", "build", *args, "--out", str(tmp_path / "x"))
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
        assert not (tmp_path / "x").exists()


def test_python_dash_m_runs_the_command():
    out = subprocess.run([sys.executable, "-m", "mmdenoise", "list", "denoisers"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.splitlines()[0].split()[:2] == ["name", "about"], out.stderr
