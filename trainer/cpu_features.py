"""CPU features read from /proc/cpuinfo: whether bfloat16 matrix multiplies run natively.

Imports no TensorFlow: configs resolve ``"auto"`` precision settings with it.
"""

from typing import FrozenSet, Optional

CPUINFO = "/proc/cpuinfo"
# Flags of native bfloat16 dot products: AVX-512 BF16 (Cooper Lake, Zen 4 and later)
# and AMX (Sapphire Rapids and later). AVX2-only CPUs emulate bfloat16, which is slower.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
FLOAT32 = "float32"
BFLOAT16 = "bfloat16"
AUTO = "auto"


def cpu_flags(path: str = CPUINFO) -> FrozenSet[str]:
  """The flags of the first processor in ``path`` (empty if unreadable, e.g. not Linux)."""
  try:
    with open(path, encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
          return frozenset(value.split())
  except OSError:
    pass
  return frozenset()


def has_native_bf16(flags: Optional[FrozenSet[str]] = None) -> bool:
  """Whether the CPU (``flags``, default read from /proc/cpuinfo) multiplies bfloat16 natively."""
  flags = cpu_flags() if flags is None else flags
  return any(flag in flags for flag in BF16_FLAGS)


def resolve_precision(setting: str, flags: Optional[FrozenSet[str]] = None) -> str:
  """``"float32"`` or ``"bfloat16"`` for a precision setting; ``"auto"`` picks bfloat16
  only where the CPU has native bfloat16 (``has_native_bf16``)."""
  if setting not in (AUTO, FLOAT32, BFLOAT16):
    raise ValueError(f"precision must be {AUTO!r}, {FLOAT32!r} or {BFLOAT16!r}; got {setting!r}")
  if setting == AUTO:
    return BFLOAT16 if has_native_bf16(flags) else FLOAT32
  return setting
