"""Model FLOPs utilisation (MFU; Chowdhery et al. 2022, PaLM, appendix B): the model FLOPs a run
achieves per second over the peak of the devices it runs on.

Model FLOPs follow the record's convention (`scalelab.record.flops_per_token`: 6N plus the
attention scores, per token). Peaks are the dense 16-bit tensor-core figures of the vendors' data
sheets, the precision training runs in; `trainer.peak_flops` (per device) overrides them. A device
not in the table (a CPU among them) has no peak, and its run no MFU.
"""
from __future__ import annotations

# (substring of torch.cuda.get_device_name(), dense bf16/fp16 FLOP/s); the first match wins
PEAKS = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("V100", 125e12),
    ("T4", 65e12),
)


def peak_flops(device: str, override: float | None = None) -> float | None:
    """One device's peak FLOP/s: `override` when given, else the table's figure for `device`
    (as the record names it, e.g. `cuda (NVIDIA H100 80GB HBM3)`), else None."""
    if override is not None:
        return float(override)
    return next((peak for name, peak in PEAKS if device.startswith("cuda") and name in device), None)


def mfu(tokens_per_second: float | None, flops_per_token: float, peak: float | None, devices: int) -> float | None:
    """Achieved model FLOP/s over the peak of `devices` devices; None without a peak or a rate."""
    if peak is None or not tokens_per_second:
        return None
    return tokens_per_second * flops_per_token / (peak * devices)
