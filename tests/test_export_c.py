"""tfopt export-c: C/C++ array for TFLite Micro; compiled with the system compiler, bytes round-trip."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import sha256
from tfopt.errors import DataError, UsageError
from tfopt.export_c import export_c, guard_for

MAIN_CC = r"""
#include <cstdint>
#include <cstdio>
#include "model_data.h"
#include "model_data.h"  // the include guard makes a second include harmless
int main(int argc, char** argv) {
  if (reinterpret_cast<std::uintptr_t>(g_model) % 16 != 0) { std::fprintf(stderr, "misaligned\n"); return 2; }
  std::FILE* f = std::fopen(argv[1], "wb");
  std::fwrite(g_model, 1, g_model_len, f);
  std::fclose(f);
  std::printf("%u\n", g_model_len);
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
def test_compiled_array_round_trips_bytes_and_is_16_byte_aligned(odd_model, tmp_path):
    tflite = odd_model["int8"]
    result = export_c(tflite, tmp_path / "model_data.cc", name="g_model")
    assert result.header == str(tmp_path / "model_data.h") and result.bytes == tflite.stat().st_size
    header = (tmp_path / "model_data.h").read_text()
    assert "#ifndef TFOPT_MODEL_DATA_H_" in header and "extern const unsigned int g_model_len;" in header
    assert "alignas(16)" in (tmp_path / "model_data.cc").read_text()
    (tmp_path / "main.cc").write_text(MAIN_CC)
    exe = tmp_path / "roundtrip"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-o", exe, tmp_path / "main.cc", tmp_path / "model_data.cc"],
                   check=True, capture_output=True, cwd=tmp_path)
    out = subprocess.run([exe, tmp_path / "back.tflite"], check=True, capture_output=True, text=True)
    assert int(out.stdout) == tflite.stat().st_size
    assert (tmp_path / "back.tflite").read_bytes() == tflite.read_bytes()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a C compiler")
def test_source_also_compiles_as_c11(odd_model, tmp_path):
    export_c(odd_model["int8"], tmp_path / "model.c", name="model_tflite")
    (tmp_path / "main.c").write_text('#include "model.h"\nint main(void) { return model_tflite_len > 0 ? 0 : 1; }\n')
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Werror", "-o", tmp_path / "m", tmp_path / "main.c", tmp_path / "model.c"],
                   check=True, capture_output=True, cwd=tmp_path)
    assert subprocess.run([tmp_path / "m"]).returncode == 0


def test_refuses_to_overwrite_the_input(cli, odd_model, tmp_path):
    src = tmp_path / "model.cc"
    src.write_bytes(odd_model["int8"].read_bytes())  # a .tflite that happens to be named .cc
    before = sha256(src)
    r = cli("export-c", src, "-o", src)
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"Error: refusing to write -o {src}: it is the TFLite model ({src}); "
                                "inputs are never overwritten, choose another output path")
    assert sha256(src) == before and not (tmp_path / "model.h").exists()


def test_bad_name_bad_suffix_and_not_a_tflite(odd_model, tmp_path):
    with pytest.raises(UsageError, match=r"--name '2model' is not a valid C identifier"):
        export_c(odd_model["int8"], tmp_path / "a.cc", name="2model")
    with pytest.raises(UsageError, match=r"expected a C/C\+\+ source file name"):
        export_c(odd_model["int8"], tmp_path / "a.h")
    with pytest.raises(DataError, match="is not a TFLite model"):
        export_c(odd_model["h5"], tmp_path / "a.cc")
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp files left behind


def test_cli_json_and_guard_name(cli, odd_model, tmp_path):
    r = cli("export-c", odd_model["int8"], "-o", tmp_path / "my-model.data.cc", "--name", "g_odd", "--json")
    assert r.exit_code == 0, r.stderr
    assert '"name": "g_odd"' in r.stdout and sorted(p.name for p in tmp_path.iterdir()) == ["my-model.data.cc",
                                                                                          "my-model.data.h"]
    assert guard_for("my-model.data.h") in (tmp_path / "my-model.data.h").read_text()
    r = cli("export-c", tmp_path / "missing.tflite", "-o", tmp_path / "x.cc")
    assert r.exit_code == 1 and r.stderr.strip() == f"Error: TFLite model not found: {tmp_path / 'missing.tflite'} (expected a .tflite file)"
