"""EIP-712 work receipts: what a peer claims it did in one epoch, signed with its Ethereum key.

A `WorkReceipt` names the run (bytes32 run id), the epoch, the peer address, the number of
rollouts (`samples`), their completion tokens, the Merkle root of the rollout records, the
CID of the checkpoint the peer trained from (the epoch's canonical checkpoint) and `contribution`:
the sha2-256 digest inside the CID of the gradient contribution the peer sent to the epoch's
averaging round (`EpochOutcome.contribution`; zero when it sent none). Validators pay a receipt
only when that contribution entered the canonical round. `build_receipt` derives the counts and
the root from the records so an honest peer cannot get them wrong.

    receipt = build_receipt(run_id_bytes32=spec.run_id_bytes32, epoch=3, peer=acct.address,
                            records=records, checkpoint_cid=cid)
    signed = sign_receipt(receipt, acct.key, domain)
    signed.signer(domain)        # -> acct.address, or raises AttestationError
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from eth_utils import keccak, to_checksum_address

from coordination.attest.records import RolloutRecord, rollouts_tree
from coordination.chain.eip712 import recover_struct_signer, sign_struct, struct_digest
from coordination.errors import AttestationError

WORK_RECEIPT_FIELDS = (
    ("runId", "bytes32"),
    ("epoch", "uint64"),
    ("peer", "address"),
    ("samples", "uint64"),
    ("completionTokens", "uint64"),
    ("rolloutsRoot", "bytes32"),
    ("checkpointCid", "string"),
    ("contribution", "bytes32"),
)
NO_CONTRIBUTION = bytes(32)


def contribution_digest(cid: str | None) -> bytes:
    """The 32-byte sha2-256 digest inside a contribution CID (NO_CONTRIBUTION for None); ValueError otherwise."""
    if cid is None:
        return NO_CONTRIBUTION
    from multiformats import CID, multihash

    try:
        parsed = CID.decode(str(cid))
    except (ValueError, KeyError, TypeError) as exc:  # multiformats raises KeyError subclasses for bad bases
        raise ValueError(f"contribution {str(cid)[:80]!r} is not a CID: {exc}") from exc
    if parsed.hashfun.name != "sha2-256":
        raise ValueError(f"contribution CID {cid} is not sha2-256")
    return bytes(multihash.unwrap(parsed.digest))


@dataclass(frozen=True)
class WorkReceipt:
    run_id: bytes
    epoch: int
    peer: str
    samples: int
    completion_tokens: int
    rollouts_root: bytes
    checkpoint_cid: str
    contribution: bytes = NO_CONTRIBUTION

    def message(self) -> dict:
        return {
            "runId": self.run_id,
            "epoch": self.epoch,
            "peer": to_checksum_address(self.peer),
            "samples": self.samples,
            "completionTokens": self.completion_tokens,
            "rolloutsRoot": self.rollouts_root,
            "checkpointCid": self.checkpoint_cid,
            "contribution": self.contribution,
        }

    def digest(self, domain: dict) -> bytes:
        return struct_digest(domain, "WorkReceipt", WORK_RECEIPT_FIELDS, self.message())

    def to_json(self) -> dict:
        data = asdict(self)
        data["run_id"], data["rollouts_root"] = "0x" + self.run_id.hex(), "0x" + self.rollouts_root.hex()
        data["contribution"] = "0x" + self.contribution.hex()
        return data

    @classmethod
    def from_json(cls, data: dict) -> WorkReceipt:
        try:
            return cls(
                bytes.fromhex(data["run_id"][2:]),
                int(data["epoch"]),
                to_checksum_address(data["peer"]),
                int(data["samples"]),
                int(data["completion_tokens"]),
                bytes.fromhex(data["rollouts_root"][2:]),
                str(data["checkpoint_cid"]),
                _bytes32(data.get("contribution", "0x" + NO_CONTRIBUTION.hex())),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise AttestationError(f"malformed work receipt ({exc}); the peer must republish it") from exc


def _bytes32(text) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        raise ValueError(f"{text!r} is not a 0x-hex bytes32")
    return bytes.fromhex(text[2:])


@dataclass(frozen=True)
class SignedReceipt:
    receipt: WorkReceipt
    signature: bytes

    def signer(self, domain: dict) -> str:
        return recover_struct_signer(
            domain, "WorkReceipt", WORK_RECEIPT_FIELDS, self.receipt.message(), self.signature
        )

    def verify(self, domain: dict) -> None:
        """Raise AttestationError unless the receipt's own peer signed it under `domain`."""
        if self.signer(domain) != to_checksum_address(self.receipt.peer):
            raise AttestationError(
                f"receipt for peer {self.receipt.peer} epoch {self.receipt.epoch} is not signed by that peer "
                "under this chain's domain; discard it"
            )

    @property
    def key(self) -> bytes:
        """Identity of the signed object (for de-duplication and verdicts)."""
        return keccak(self.signature)

    def to_json(self) -> dict:
        return {"receipt": self.receipt.to_json(), "signature": "0x" + self.signature.hex()}

    @classmethod
    def from_json(cls, data: dict) -> SignedReceipt:
        try:
            return cls(WorkReceipt.from_json(data["receipt"]), bytes.fromhex(data["signature"][2:]))
        except (KeyError, ValueError, TypeError) as exc:
            raise AttestationError(f"malformed signed receipt ({exc}); the peer must republish it") from exc


def build_receipt(
    *, run_id_bytes32: bytes, epoch: int, peer: str, records: Sequence[RolloutRecord], checkpoint_cid: str,
    contribution: bytes = NO_CONTRIBUTION,
) -> WorkReceipt:  # fmt: skip
    """The receipt whose counts and root are those of `records`."""
    if len(run_id_bytes32) != 32:
        raise ValueError(f"run_id_bytes32 must be 32 bytes (RunSpec.run_id_bytes32), got {len(run_id_bytes32)}")
    if len(contribution) != 32:
        raise ValueError(f"contribution must be a 32-byte digest (contribution_digest(cid)), got {len(contribution)}")
    root = rollouts_tree(records).root
    return WorkReceipt(
        bytes(run_id_bytes32),
        int(epoch),
        to_checksum_address(peer),
        len(records),
        sum(r.completion_tokens for r in records),
        root,
        checkpoint_cid,
        bytes(contribution),
    )


def sign_receipt(receipt: WorkReceipt, private_key, domain: dict) -> SignedReceipt:
    return SignedReceipt(
        receipt, sign_struct(private_key, domain, "WorkReceipt", WORK_RECEIPT_FIELDS, receipt.message())
    )
