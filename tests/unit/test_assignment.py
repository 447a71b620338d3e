"""Prompt assignment is a pure function of (run id, epoch, peer) and differs when any of them does."""

import pytest

from coordination.attest.assignment import assigned_indices

PEER_A = "0x" + "11" * 20
PEER_B = "0x" + "22" * 20


def test_same_inputs_same_indices_and_address_case_does_not_matter():
    a = assigned_indices("run", 1, PEER_A, 16)
    assert a == assigned_indices("run", 1, PEER_A.upper().replace("0X", "0x"), 16)
    assert len(set(a)) == 16


def test_prefix_property_more_samples_extend_the_list():
    assert assigned_indices("run", 1, PEER_A, 32)[:16] == assigned_indices("run", 1, PEER_A, 16)


@pytest.mark.parametrize("change", [("run2", 1, PEER_A), ("run", 2, PEER_A), ("run", 1, PEER_B)])
def test_any_change_changes_the_assignment(change):
    base = assigned_indices("run", 1, PEER_A, 16)
    other = assigned_indices(*change, 16)
    assert len(set(base) & set(other)) == 0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="epoch"):
        assigned_indices("run", -1, PEER_A, 4)
    with pytest.raises(ValueError):
        assigned_indices("run", 1, "not-an-address", 4)
