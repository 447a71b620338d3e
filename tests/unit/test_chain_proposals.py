"""What a proposal executes is read from its calldata: promote / rollback decode with their arguments,
anything else is shown as an unknown call with its raw bytes, whatever the description says."""

from eth_utils import keccak

from coordination.chain.eip712 import run_key
from coordination.chain.governance import Proposal, decode_actions, promotion_proposal, rollback_proposal

REGISTRY = "0x" + "12" * 20
OTHER = "0x" + "34" * 20


def test_promote_and_rollback_decode_with_their_arguments():
    digest = keccak(text="eval")
    promote = promotion_proposal(REGISTRY, "run", "bafyreireal", digest, "Promote bafyreisomethingelse: 64/64")
    [action] = decode_actions(*promote.as_args(), registry_address=REGISTRY)
    assert action.function == "promote"
    assert action.args == {"runId": run_key("run"), "cid": "bafyreireal", "evalDigest": digest}
    assert "bafyreireal" in action.summary() and "bafyreisomethingelse" not in action.summary()
    [back] = decode_actions(*rollback_proposal(REGISTRY, "run", 2).as_args(), registry_address=REGISTRY)
    assert (back.function, back.args["index"]) == ("rollback", 2)


def test_calls_elsewhere_or_undecodable_are_unknown():
    promote = promotion_proposal(REGISTRY, "run", "bafyreireal", keccak(text="eval"))
    elsewhere = Proposal((OTHER,), (5,), promote.calldatas, "harmless")
    [action] = decode_actions(*elsewhere.as_args(), registry_address=REGISTRY)
    assert action.function == "unknown" and action.args["calldata"] == promote.calldatas[0]
    assert "with 5 wei" in action.summary()
    garbage = Proposal((REGISTRY,), (0,), (b"\xde\xad\xbe\xef",), "")
    assert decode_actions(*garbage.as_args(), registry_address=REGISTRY)[0].function == "unknown"
