"""Bad settings and broken input files fail before any work, naming what is wrong.

Each case runs the CLI as a user would and checks three things: the exit code,
that the message names the setting or the file at fault, and that nothing was
written (no stage folder, no config.toml).
"""

import h5py
import numpy as np
import pytest

from brainldm.cli import main

# (id, extra CLI arguments, what the message must contain)
BAD_SETTINGS = [
    ("negative guidance", ["--set", "reconstruction.guidance_scale=-1"],
     "reconstruction.guidance_scale=-1"),
    ("nan guidance", ["--set", "reconstruction.guidance_scale=nan"],
     "reconstruction.guidance_scale=nan"),
    ("guidance as text", ["--set", 'reconstruction.guidance_scale="5"'],
     "reconstruction.guidance_scale='5'"),
    ("strength as text", ["--set", 'reconstruction.strength="high"'],
     "reconstruction.strength='high'"),
    ("strength above 1", ["--set", "reconstruction.strength=1.5"], "reconstruction.strength=1.5"),
    ("image size 7", ["--set", "reconstruction.image_size=7"], "reconstruction.image_size=7"),
    ("image size 100", ["--set", "reconstruction.image_size=100"], "reconstruction.image_size=100"),
    ("negative seed", ["--set", "reconstruction.seed=-1"], "reconstruction.seed=-1"),
    ("zscore as text", ["--set", 'data.zscore="no"'], "data.zscore='no'"),
    ("cv as text", ["--set", 'decoding.cv="five"'], "decoding.cv='five'"),
    ("one fold", ["--set", "decoding.cv=1"], "decoding.cv=1"),
    ("batch size as text", ["--set", 'features.batch_size="8"'], "features.batch_size='8'"),
    ("batch size 0", ["--set", "features.batch_size=0"], "features.batch_size=0"),
    ("no subjects", ["--set", "data.subjects=[]"], "data.subjects=[]"),
    ("subjects as text", ["--set", 'data.subjects="1"'], "data.subjects='1'"),
    ("fractional subject", ["--set", "data.subjects=[1.5]"], "data.subjects[0]=1.5"),
    ("repeated subject", ["--set", "data.subjects=[1, 1]"], "data.subjects=[1, 1]"),
    ("strength list item", ["--set", "features.zc_strengths=[1.5]"],
     "features.zc_strengths[0]=1.5"),
    ("empty fractions", ["--set", "features.zc_fractions=[]"], "features.zc_fractions=[]"),
    ("zero alpha", ["--set", "decoding.alphas=[0, 1]"], "decoding.alphas[0]=0"),
    ("q above 1", ["--set", "encoding.q=2"], "encoding.q=2"),
    ("unknown split", ["--set", 'data.split="all"'], "data.split='all'"),
    ("unknown device", ["--set", 'features.device="gpu"'], "features.device='gpu'"),
    ("unknown executor", ["--set", 'scale.executor="slurm"'], "scale.executor='slurm'"),
    ("empty protocols", ["--set", "evaluation.protocols=[]"], "evaluation.protocols=[]"),
    ("unknown key", ["--set", "reconstruction.guidance=3"], "unknown key(s) ['guidance']"),
    ("unknown subject", ["--subjects", "3"], "subject=3 is not available"),
    ("unknown ROI", ["--set", 'data.z_roi="v9"'], "v9"),
    ("no stages", ["--stages", ","], "stages is empty"),
    ("no model", [], "features.model is not set"),
    ("missing model", ["--set", 'features.model="/nonexistent/sd-v1-4.ckpt"'],
     "features.model='/nonexistent/sd-v1-4.ckpt' does not exist"),
]  # fmt: skip

BAD_ARGUMENTS = [
    ("empty subjects", ["--subjects", ""], "--subjects"),
    ("comma subjects", ["--subjects", ","], "--subjects"),
]


def _run(root, out, extra, stages=("prepare", "features", "decode")):
    base = ["run", "--preset", "demo", "--set", f'data.nsd_root="{root}"', "--out", str(out)]
    if "--stages" not in extra:
        base += ["--stages", ",".join(stages)]
    return main(base + list(extra))


def _assert_failed_cleanly(capsys, code, expected_code, expected_text, out):
    err = capsys.readouterr().err
    assert code == expected_code, err
    assert expected_text in err, err
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    return err


@pytest.mark.parametrize("extra, text", [c[1:] for c in BAD_SETTINGS],
                         ids=[c[0] for c in BAD_SETTINGS])  # fmt: skip
def test_bad_settings_fail_before_anything_is_written(fake_nsd, tmp_path, capsys, extra, text):
    out = tmp_path / "out"
    code = _run(fake_nsd.root, out, extra)
    _assert_failed_cleanly(capsys, code, 1, text, out)


@pytest.mark.parametrize("extra, text", [c[1:] for c in BAD_ARGUMENTS],
                         ids=[c[0] for c in BAD_ARGUMENTS])  # fmt: skip
def test_bad_arguments_are_refused_by_the_parser(fake_nsd, tmp_path, capsys, extra, text):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        _run(fake_nsd.root, out, extra)
    _assert_failed_cleanly(capsys, exit_info.value.code, 2, text, out)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _no_betas(path):
    path.unlink()
    with h5py.File(path, "w") as f:
        f["other"] = np.zeros(3)


def _fewer_trials(path):
    with h5py.File(path, "r") as f:
        betas = f["betas"][:-1]
    path.unlink()
    with h5py.File(path, "w") as f:
        f["betas"] = betas


BROKEN_BETAS = {
    "truncated": (_truncate, "cannot read the betas file"),
    "garbage": (_garbage, "cannot read the betas file"),
    "no betas dataset": (_no_betas, "has no 'betas' dataset"),
    "one trial short": (_fewer_trials, "trials, but responses.tsv lists"),
}


@pytest.mark.parametrize("breakage", list(BROKEN_BETAS))
def test_a_broken_betas_file_is_named_before_anything_is_written(
    fake_nsd_copy, tmp_path, capsys, breakage
):
    path = fake_nsd_copy.betas(2, 2, "hdf5")  # the last session of the second subject
    breaker, text = BROKEN_BETAS[breakage]
    breaker(path)
    out = tmp_path / "out"
    code = _run(fake_nsd_copy.root, out, ["--stages", "prepare"])
    err = _assert_failed_cleanly(capsys, code, 1, text, out)
    assert str(path) in err


@pytest.mark.parametrize("breakage", ["truncated", "not an object"])
def test_a_corrupt_captions_file_is_named_before_anything_is_written(
    fake_nsd_copy, tmp_path, capsys, breakage
):
    files = sorted(fake_nsd_copy.captions("train2017").parent.glob("captions_*.json"))
    for path in files:
        if breakage == "truncated":
            _truncate(path)
        else:
            path.write_text('["a list, not a COCO file"]')
    model = tmp_path / "model"
    model.mkdir()
    out = tmp_path / "out"
    extra = ["--stages", "prepare,features", "--set", f'features.model="{model}"']
    code = _run(fake_nsd_copy.root, out, extra)
    err = _assert_failed_cleanly(capsys, code, 1, "cannot read the COCO captions file", out)
    assert any(str(path) in err for path in files)


@pytest.mark.parametrize("content", [b"garbage" * 100, b"", b"PK\x03\x04 not a zip"])
def test_reconstruct_names_a_garbage_decoded_file(tmp_path, capsys, content):
    decoded = tmp_path / "decoded.npz"
    decoded.write_bytes(content)
    out = tmp_path / "rec"
    code = main(["reconstruct", "--model", str(tmp_path), "--decoded", str(decoded),
                 "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and str(decoded) in err and "allow_pickle" not in err, err
    assert not out.exists()


def test_messages_name_the_file_not_just_the_error(fake_nsd_copy, tmp_path):
    """The library readers, not only the pipeline's check, name a bad file."""
    from brainldm.nsd import load_betas, load_captions, load_roi_mask

    path = fake_nsd_copy.betas(1, 1, "hdf5")
    _truncate(path)
    mask = load_roi_mask(fake_nsd_copy, 1, "early")
    with pytest.raises(ValueError, match="cannot read the betas file .*betas_session01.hdf5"):
        load_betas(fake_nsd_copy, 1, [1], mask)
    for captions in fake_nsd_copy.captions("train2017").parent.glob("captions_*.json"):
        captions.write_text("{")
    with pytest.raises(ValueError, match=r"cannot read the COCO captions file .*captions_"):
        load_captions(fake_nsd_copy, [0, 1, 2])
