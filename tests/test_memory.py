"""The refusal's message (CPU, made-up figures; the count itself: test_release.py)."""
import pytest

from dragnoise.memory import GIB, EditTooLarge, check_fits


def test_refusal_names_estimate_and_free_memory():
    est = int(10.1 * GIB)
    check_fits(est, 12 * GIB)  # fits: no error
    with pytest.raises(EditTooLarge, match=r"10\.10 GiB.*8\.00 GiB is free") as e:
        check_fits(est, 8 * GIB)
    assert e.value.estimate_bytes == est and e.value.free_bytes == 8 * GIB


def test_small_estimates_read_in_mib():
    with pytest.raises(EditTooLarge, match=r"about 2\.5 MiB but only 1\.0 MiB is free"):
        check_fits(int(2.5 * 2 ** 20), 2 ** 20)
