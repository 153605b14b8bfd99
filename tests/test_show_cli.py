"""`nas show` and load_spec: every way of naming a spec, the table, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nas import ArchSpec, StageSpec, build_model, count, load_spec, preset
from nas.api import spec_from_json_data
from nas.cli import main
from nas.errors import NasError, SpecError

pytestmark = pytest.mark.usefixtures("one_thread")

B0_OFFICIAL = ("r1_k3_s11_e1_i32_o16_se0.25 r2_k3_s22_e6_i16_o24_se0.25 r2_k5_s22_e6_i24_o40_se0.25 "
               "r3_k3_s22_e6_i40_o80_se0.25 r3_k5_s11_e6_i80_o112_se0.25 r4_k5_s22_e6_i112_o192_se0.25 "
               "r1_k3_s11_e6_i192_o320_se0.25")


def test_package_exports():
    assert callable(build_model) and callable(count) and ArchSpec and StageSpec
    assert count(load_spec("efficientnet-b0")).params == 5_288_548


def test_load_spec_accepts_every_form(tmp_path):
    b0 = preset("efficientnet-b0")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(b0.to_json())
    run_file = tmp_path / "b0.json"
    run_file.write_text(json.dumps({"spec": b0.to_dict(), "metrics": {"accuracy": 0.5}, "reward": 0.4, "trial": 3}))
    assert load_spec("efficientnet-b0") == b0
    assert load_spec("EfficientNet-B0") == b0
    assert load_spec(str(spec_file)) == b0 and load_spec(spec_file) == b0
    assert load_spec(str(run_file)) == b0
    assert load_spec(B0_OFFICIAL).key() == b0.key()
    assert load_spec(B0_OFFICIAL.replace(" ", ", ")).key() == b0.key()
    assert load_spec(b0) is b0 and load_spec(b0.to_dict()) == b0
    typed = load_spec("ir_r1_k3_s1_e1_c16 ir_r2_k3_s2_e6_c24")
    assert (typed.stem_channels, typed.head_channels, typed.resolution) == (32, 1280, 224)


def test_load_spec_errors_name_the_input(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"metrics": {}}))
    bad_stage = preset("efficientnet-b0").to_dict()
    bad_stage["stages"][2]["kernel"] = 4
    (tmp_path / "bad.json").write_text(json.dumps({"spec": bad_stage}))
    cases = [(str(tmp_path / "missing.json"), "missing.json: no such spec file"),
             (str(tmp_path / "broken.json"), "broken.json: not valid JSON"),
             (str(tmp_path / "other.json"), "other.json: holds no spec"),
             (str(tmp_path / "bad.json"), "bad.json: stages[2].kernel"),
             ("resnet50", "'resnet50' is not a preset"), ("", "empty"),
             ("r1_k3_s11_e1_i32_o17_se0.25 r2_k3_s22_e6_i16_o24", "i16 does not match")]
    for text, message in cases:
        with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_spec(text)
    with pytest.raises(NasError):
        spec_from_json_data([1, 2], "list.json")
    with pytest.raises(SpecError):
        load_spec(3)


def test_show_prints_the_table_params_and_flops(capsys):
    assert main(["show", "efficientnet-b0"]) == 0
    out = capsys.readouterr().out
    assert "MBConv6, k5x5" in out and "MBConv1, k3x3" in out and "112x112" in out
    assert "params: 5,288,548" in out
    assert out.count("FLOPs (multiply-adds)") == 1 and "0.386 G" in out


def test_show_json_and_strings(capsys):
    assert main(["show", "mnasnet-b1", "--json", "--classes", "10", "--in-chans", "1", "--resolution", "32"]) == 0
    shown = ArchSpec.from_json(capsys.readouterr().out)
    assert shown == preset("mnasnet-b1").with_(num_classes=10, in_chans=1, resolution=32)
    assert main(["show", B0_OFFICIAL, "--strings", "efficientnet"]) == 0
    assert capsys.readouterr().out.strip() == B0_OFFICIAL
    assert main(["show", "efficientnetv2-s", "--strings", "typed"]) == 0
    assert capsys.readouterr().out.startswith("er_r2_k3_s1_e1_c24 er_r4_k3_s2_e4_c48")


def test_show_reads_a_run_b0_json(tmp_path, capsys):
    path = tmp_path / "b0.json"
    spec = preset("efficientnetv2-s").with_(num_classes=10, in_chans=1, resolution=64)
    path.write_text(json.dumps({"spec": spec.to_dict(), "metrics": {}, "reward": 0.1, "trial": 0}))
    assert main(["show", str(path)]) == 0
    assert f"params: {count(spec).params:,}" in capsys.readouterr().out


@pytest.mark.parametrize("argv,field", [
    (["show", "r1_k3_s13_e1_i32_o16"], "non-square"),
    (["show", "ir_r1_k4_s1_e1_c16"], "kernel"),
    (["show", "efficientnet-b0", "--resolution", "4"], "--resolution"),
    (["show", "efficientnet-b0", "--classes", "0"], "--classes"),
    (["show", "efficientnet-b0", "--strings", "efficientnet", "--in-chans", "-1"], "--in-chans"),
    (["show", "efficientnetv2-s", "--strings", "efficientnet"], "block"),
    (["show", "nope"], "not a preset"),
    (["show", "ir_r1_k3_s1_e1_c1000000000"], "out_channels: must be an integer between 1 and 16384"),
    (["show", "ir_r1000000000_k3_s1_e1_c16"], "repeats: must be an integer between 1 and 100"),
])
def test_show_errors_are_one_line(argv, field, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1 and field in captured.err


def test_show_error_through_a_subprocess(tmp_path):
    data = preset("efficientnet-b0").to_dict()
    data["stages"][0]["se_ratio"] = 2.0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "nas", "show", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert "stages[0].se_ratio" in proc.stderr and "Traceback" not in proc.stderr
    ok = subprocess.run([sys.executable, "-m", "nas", "show", "mnasnet-a1"], capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0 and "3,887,038" in ok.stdout


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`nas show ... | head -1`: the pipe closes under the writer; no BrokenPipeError is printed."""
    proc = subprocess.Popen([sys.executable, "-m", "nas", "show", "efficientnet-b7", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the writer (still importing) wrote a byte
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and err == "", err
