"""The bfloat16 detector reads /proc/cpuinfo-style flags; never assumes."""

import pytest

from trainer import cpu_features

AVX512_BF16 = "fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni"
AMX = "fpu sse2 avx2 avx512f amx_bf16 amx_tile"
AVX2_ONLY = "fpu sse2 fma avx avx2 bmi2"


def _cpuinfo(tmp_path, flags: str) -> str:
  path = tmp_path / "cpuinfo"
  path.write_text(f"processor\t: 0\nmodel name\t: Fake CPU\nflags\t\t: {flags}\n\n"
                  f"processor\t: 1\nflags\t\t: {flags}\n")
  return str(path)


@pytest.mark.parametrize("flags, native", [(AVX512_BF16, True), (AMX, True),
                                           (AVX2_ONLY, False), ("", False)])
def test_bf16_is_detected_from_the_flags(tmp_path, flags, native):
  found = cpu_features.cpu_flags(_cpuinfo(tmp_path, flags))
  assert cpu_features.has_native_bf16(found) is native
  assert cpu_features.resolve_precision("auto", found) == ("bfloat16" if native else "float32")


def test_an_unreadable_cpuinfo_means_no_bf16(tmp_path):
  flags = cpu_features.cpu_flags(str(tmp_path / "missing"))
  assert flags == frozenset() and not cpu_features.has_native_bf16(flags)


def test_explicit_precisions_are_kept_whatever_the_cpu():
  avx2 = frozenset(AVX2_ONLY.split())
  assert cpu_features.resolve_precision("bfloat16", avx2) == "bfloat16"
  assert cpu_features.resolve_precision("float32", frozenset(AMX.split())) == "float32"
  with pytest.raises(ValueError, match="precision must be"):
    cpu_features.resolve_precision("float16", avx2)
