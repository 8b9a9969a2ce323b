"""The memory estimate and the refusal (CPU, made-up free-memory figures)."""
import pytest

from dragnoise.memory import GIB, EditTooLarge, check_fits, estimate_bytes

COUNTS = {"weights_gib": 4.8, "replayed_weight_copies_gib": 1.5, "saved_activations_gib": 3.0,
          "upsampled_feature_gib": 0.8}


def test_estimate_adds_the_upsampled_feature_unless_low_memory():
    assert estimate_bytes(COUNTS, low_memory=True) == int(9.3 * GIB)
    assert estimate_bytes(COUNTS) == int(10.1 * GIB)


def test_refusal_names_estimate_and_free_memory():
    est = estimate_bytes(COUNTS)
    check_fits(est, 12 * GIB)  # fits: no error
    with pytest.raises(EditTooLarge, match=r"10\.10 GiB.*8\.00 GiB is free") as e:
        check_fits(est, 8 * GIB)
    assert e.value.estimate_bytes == est and e.value.free_bytes == 8 * GIB
