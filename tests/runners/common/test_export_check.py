"""The export check's verdicts on logits (`export_check.compare`): within tolerance by dtype, a
dropped adapter named as such, NaN never passing, and an adapter too weak to tell recorded."""

from __future__ import annotations

import pytest
import torch

from aligntune.runners.common.export_check import ExportCheckFailed, compare


def test_close_enough_for_the_dtype_passes_and_records_the_numbers() -> None:
    reference = [torch.tensor([10.0, -2.0, 0.5])]
    exported = [torch.tensor([10.0005, -2.0, 0.5])]
    base = [torch.tensor([9.0, -1.0, 0.5])]
    result = compare(reference, exported, "float32", base, "merged model")
    assert result.max_abs_diff == pytest.approx(5e-4, rel=1e-2)
    assert result.tolerance == pytest.approx(1e-3)  # 1e-4 x the largest logit, 10
    assert result.adapter_effect == pytest.approx(1.0) and result.conclusive
    with pytest.raises(
        ExportCheckFailed, match=r"up to 0.0005 away .*\(tolerance 0.0001 in float32\)"
    ):
        compare([torch.tensor([0.5])], [torch.tensor([0.5005])], "float32", None, "copy")


def test_an_export_equal_to_the_base_is_named_a_dropped_adapter() -> None:
    reference = [torch.tensor([3.0, 1.0]), torch.tensor([0.0, 2.0])]
    base = [torch.tensor([2.0, 1.0]), torch.tensor([0.0, 2.5])]
    with pytest.raises(ExportCheckFailed, match="the adapter was dropped; nothing was written"):
        compare(reference, base, "bfloat16", base, "merged model")


def test_nan_never_passes() -> None:
    reference = [torch.tensor([1.0, 2.0])]
    with pytest.raises(ExportCheckFailed, match="up to nan away"):
        compare(reference, [torch.tensor([float("nan"), 2.0])], "float32", None, "copy")


def test_an_adapter_within_the_tolerance_is_recorded_as_inconclusive() -> None:
    reference = [torch.tensor([1.0, 2.0])]
    base = [torch.tensor([1.0, 2.01])]
    result = compare(reference, reference, "bfloat16", base, "merged model")
    assert not result.conclusive and result.as_dict()["conclusive"] is False
