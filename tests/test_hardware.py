import warnings

import pytest

from lrrnet.engine.hardware import (
    bf16_is_emulated,
    cpu_description,
    cpu_flags,
    cpu_model_name,
    warn_if_bf16_is_emulated,
)

CPUINFO = """processor\t: 0
model name\t: Example Xeon 9999
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile
processor\t: 1
model name\t: Example Xeon 9999
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile
"""


def test_cpu_flags_read_the_first_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16", "amx_tile"}
    assert cpu_flags(tmp_path / "missing") == set()


def test_cpu_model_name_is_the_first_model_name_or_none(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    assert cpu_model_name(cpuinfo) == "Example Xeon 9999"
    assert cpu_model_name(tmp_path / "missing") is None


def test_bf16_is_native_with_either_flag():
    assert not bf16_is_emulated({"avx512_bf16"})
    assert not bf16_is_emulated({"amx_bf16"})
    assert bf16_is_emulated({"avx2", "avx512f", "amx_tile"})


def test_cpu_description_names_the_model_and_the_native_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    text = cpu_description(cpuinfo)
    assert text.startswith("Example Xeon 9999, ")
    assert "native bf16: avx512_bf16" in text
    cpuinfo.write_text(CPUINFO.replace(" avx512_bf16", ""))
    assert "native bf16: no (amx_bf16, avx512_bf16 absent)" in cpu_description(cpuinfo)


def test_bf16_warns_and_names_the_flag_only_without_native_bf16():
    with pytest.warns(RuntimeWarning, match="avx512_bf16"):
        assert warn_if_bf16_is_emulated("bf16", flags={"avx2", "fma"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_bf16_is_emulated("bf16", flags={"amx_bf16", "avx512_bf16"})
        assert not warn_if_bf16_is_emulated("fp32", flags=set())
