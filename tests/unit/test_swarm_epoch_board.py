"""Canonical CID selection and the head epoch against lying announcers (pure functions of the DHT records)."""

from coordination.swarm.epoch_board import choose_canonical, head_epoch

A, B, C, X = (f"[owner:{n}]".encode() for n in "abcx")
HONEST = [A, B, C]


def result(cid, group, peer="p"):
    return {"cid": cid, "group": list(group), "peer_id": peer}


def test_the_cid_of_the_groups_majority_is_canonical():
    records = {A: result("good", HONEST), B: result("good", HONEST), C: result("good", HONEST)}
    found = choose_canonical(4, records)
    assert (found.cid, found.votes, found.group, found.epoch) == ("good", 3, tuple(sorted(HONEST)), 4)


def test_one_member_announcing_another_cid_for_the_same_group_changes_nothing():
    records = {A: result("good", HONEST), B: result("good", HONEST), C: result("evil", HONEST)}
    assert choose_canonical(4, records).cid == "good"


def test_an_attacker_claiming_a_group_of_its_own_loses_to_the_honest_group():
    records = {A: result("good", [A, B]), B: result("good", [A, B]), X: result("evil", [X])}
    assert choose_canonical(4, records).cid == "good"


def test_no_majority_means_no_canonical():
    records = {A: result("one", HONEST), B: result("two", HONEST), C: result("three", HONEST)}
    assert choose_canonical(4, records) is None


def test_a_writer_outside_the_group_it_names_is_ignored_and_malformed_records_are_skipped():
    records = {
        X: result("evil", [A, B]),  # votes for a group it is not in
        A: result("good", [A]),
        B: {"cid": 7, "group": "nope"},
        C: "garbage",
    }
    found = choose_canonical(4, records)
    assert found.cid == "good" and found.votes == 1


def test_head_epoch_ignores_a_minority_announcing_epoch_10_to_the_6():
    heads = {A: {"epoch": 7}, B: {"epoch": 7}, C: {"epoch": 6}, X: {"epoch": 10**6}}
    assert head_epoch(heads) == 7
    assert head_epoch({A: {"epoch": 3}, X: {"epoch": 10**6}}) == 3  # lower median: a 1-1 tie goes low
    assert head_epoch({A: {"epoch": True}, X: {"epoch": -1}, B: {"epoch": "9"}}) is None
    assert head_epoch({}) is None


def test_the_owner_key_survives_a_restart_and_a_second_key_in_one_process_is_refused(tmp_path):
    """`use_owner_key` (what `hivetune join` does with <output-dir>/owner.key), in fresh processes: the same file
    gives the same owner of epoch-board records; it is private (0600); a different or corrupt key is refused."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from coordination.swarm.dht_node import use_owner_key\n"
        "from coordination.swarm.epoch_board import EpochBoard\n"
        "owner = use_owner_key(sys.argv[1])\n"
        "from hivemind.dht.crypto import RSASignatureValidator\n"
        "assert RSASignatureValidator().local_public_key == owner\n"  # what EpochBoard and receipts sign with
        "print(owner.hex())\n"
        "if len(sys.argv) > 2: use_owner_key(sys.argv[2])\n"
    )

    def owner(*paths):
        return subprocess.run([sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True)

    key = tmp_path / "peer" / "owner.key"
    first, again = owner(key), owner(key)
    assert first.returncode == again.returncode == 0, first.stderr
    assert first.stdout == again.stdout and len(first.stdout) > 200
    assert key.stat().st_mode & 0o777 == 0o600
    second = owner(key, tmp_path / "other.key")
    assert second.returncode != 0 and "already signs DHT records with another owner key" in second.stderr
    (tmp_path / "bad.key").write_bytes(b"not a key")
    bad = owner(tmp_path / "bad.key")
    assert bad.returncode != 0 and "is not an RSA owner key" in bad.stderr and "move it away" in bad.stderr


def test_board_polls_start_quick_and_back_off_to_twice_a_second():
    from itertools import islice

    from coordination.swarm.epoch_board import poll_intervals

    sleeps = list(islice(poll_intervals(), 12))
    assert sleeps[0] == 0.05 and sleeps == sorted(sleeps) and sleeps[-1] == 0.5
    assert sum(sleeps[:5]) < 0.7  # the first five polls within 0.7 s: a round's members arrive close together
