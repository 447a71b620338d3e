"""The one EIP-712 stack of hivetune: domains, every typed message, signing, recovery, quorum pre-checks.

Every signature hivetune makes or checks goes through `struct_digest` / `sign_struct` /
`recover_struct_signer` here, byte-for-byte what the contracts check (`_hashTypedDataV4`):

- `Period(bytes32 runId,uint256 period,uint64 firstEpoch,uint64 lastEpoch,bytes32 root,uint256 totalUnits,
  uint256 reward,uint64 snapshot)`: settle a reward period (ContributionLedger); domain
  "HivetuneContributionLedger" v1.
- `VoidPeriod(bytes32 runId,uint256 period,uint64 snapshot)`: void it in its challenge window.
- `Slash(address offender,uint256 bps,bytes32 evidence,uint256 snapshot)`: Staking.slash; "HivetuneStaking" v1.
- `Permit(...)`: EIP-2612 for `Staking.stakeWithPermit`.
- off-chain attestations (WorkReceipt, Verdict, eval results) in the `attest_domain` ("hivetune" v1).

Each is bound by its domain to one chain id and one contract. The contracts want quorum signatures
ordered by strictly increasing signer address (`order_by_signer`, `quorum_signatures`);
`require_quorum_offchain` replays `Staking.requireQuorumAt` (same errors, same order) before gas is paid.

    domain = ledger_domain(chain_id, ledger_address)
    s = PeriodSettlement(run_key("bafy..."), 0, 0, 9, root, 60, 10**18, snapshot)
    sigs = quorum_signatures(validators, lambda a: sign_period(a, domain, s))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys import keys
from eth_utils import is_hexstr, keccak, to_bytes, to_checksum_address

from coordination.errors import AttestationError

LEDGER_NAME = "HivetuneContributionLedger"
STAKING_NAME = "HivetuneStaking"
ATTEST_NAME = "hivetune"
VERSION = "1"
ZERO_ADDRESS = "0x" + "00" * 20
SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0

PERIOD_FIELDS = (
    ("runId", "bytes32"),
    ("period", "uint256"),
    ("firstEpoch", "uint64"),
    ("lastEpoch", "uint64"),
    ("root", "bytes32"),
    ("totalUnits", "uint256"),
    ("reward", "uint256"),
    ("snapshot", "uint64"),
)
VOID_FIELDS = (("runId", "bytes32"), ("period", "uint256"), ("snapshot", "uint64"))
SLASH_FIELDS = (("offender", "address"), ("bps", "uint256"), ("evidence", "bytes32"), ("snapshot", "uint256"))
PERMIT_FIELDS = (
    ("owner", "address"),
    ("spender", "address"),
    ("value", "uint256"),
    ("nonce", "uint256"),
    ("deadline", "uint256"),
)

Signer = LocalAccount | str | bytes  # an account or its private key


# ---------------------------------------------------------------- domains


@dataclass(frozen=True)
class Eip712Domain:
    name: str
    version: str
    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }


def ledger_domain(chain_id: int, ledger_address: str) -> Eip712Domain:
    return Eip712Domain(LEDGER_NAME, VERSION, chain_id, ledger_address)


def staking_domain(chain_id: int, staking_address: str) -> Eip712Domain:
    return Eip712Domain(STAKING_NAME, VERSION, chain_id, staking_address)


def attest_domain(
    *, chain_id: int, verifying_contract: str | None = None, name: str = ATTEST_NAME, version: str = VERSION
) -> dict:
    """The domain of hivetune's off-chain attestations on `chain_id` (contract = the ledger, when deployed)."""
    return {
        "name": name,
        "version": version,
        "chainId": int(chain_id),
        "verifyingContract": verifying_contract or ZERO_ADDRESS,
    }


def _domain_dict(domain: Eip712Domain | dict) -> dict:
    return domain.as_dict() if isinstance(domain, Eip712Domain) else domain


def run_key(run_id: str | bytes) -> bytes:
    """The bytes32 a run is known by on chain: keccak256 of the run id string; 0x+64 hex or 32 bytes as is."""
    if isinstance(run_id, bytes):
        if len(run_id) != 32:
            raise ValueError(f"a raw run id must be 32 bytes, got {len(run_id)}; pass the run id string instead")
        return run_id
    if is_hexstr(run_id) and run_id.startswith("0x") and len(run_id) == 66:
        return to_bytes(hexstr=run_id)
    if not run_id:
        raise ValueError("run id is empty; pass the run config's CID")
    return keccak(text=run_id)


# ---------------------------------------------------------------- the three primitives


def _signable(domain, primary: str, fields: Sequence[tuple[str, str]], message: dict):
    types = {primary: [{"name": n, "type": t} for n, t in fields]}
    return encode_typed_data(domain_data=_domain_dict(domain), message_types=types, message_data=message)


def _as_account(signer: Signer) -> LocalAccount:
    return signer if isinstance(signer, LocalAccount) else Account.from_key(signer)


def struct_digest(domain, primary: str, fields, message: dict) -> bytes:
    """The 32-byte digest that is signed (`keccak(0x1901 || domainSeparator || structHash)`)."""
    signable = _signable(domain, primary, fields, message)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_struct(signer: Signer, domain, primary: str, fields, message: dict) -> bytes:
    """65-byte (r, s, v) signature of the typed struct by an account or private key."""
    return bytes(_as_account(signer).sign_message(_signable(domain, primary, fields, message)).signature)


def recover_struct_signer(domain, primary: str, fields, message: dict, signature: bytes) -> str:
    """Checksummed address that signed the struct; AttestationError when the signature is malformed."""
    try:
        return Account.recover_message(_signable(domain, primary, fields, message), signature=bytes(signature))
    except Exception as exc:  # eth-keys raises several types for bad r/s/v
        raise AttestationError(
            f"malformed EIP-712 signature over {primary}: {exc}; ask the signer to re-sign"
        ) from exc


# ---------------------------------------------------------------- ledger and staking messages


@dataclass(frozen=True)
class PeriodSettlement:
    """What validators sign to settle a period (the ledger's `Settlement` struct, in its order)."""

    run_id: bytes
    period: int
    first_epoch: int
    last_epoch: int
    root: bytes
    total_units: int
    reward: int
    snapshot: int

    def __post_init__(self):
        object.__setattr__(self, "run_id", run_key(self.run_id))
        if self.last_epoch < self.first_epoch:
            raise ValueError(f"last_epoch {self.last_epoch} < first_epoch {self.first_epoch}; name the range in order")

    def message(self) -> dict:
        return {
            "runId": self.run_id,
            "period": self.period,
            "firstEpoch": self.first_epoch,
            "lastEpoch": self.last_epoch,
            "root": bytes(self.root),
            "totalUnits": self.total_units,
            "reward": self.reward,
            "snapshot": self.snapshot,
        }

    def as_tuple(self) -> tuple:
        """The ABI tuple `submitPeriod`/`periodDigest` take."""
        return tuple(self.message().values())


def period_digest(domain: Eip712Domain, s: PeriodSettlement) -> bytes:
    """Equals `ContributionLedger.periodDigest(s)`."""
    return struct_digest(domain, "Period", PERIOD_FIELDS, s.message())


def sign_period(signer: Signer, domain: Eip712Domain, s: PeriodSettlement) -> bytes:
    return sign_struct(signer, domain, "Period", PERIOD_FIELDS, s.message())


def recover_period_signers(signatures: Sequence[bytes], domain: Eip712Domain, s: PeriodSettlement) -> list[str]:
    return [recover_struct_signer(domain, "Period", PERIOD_FIELDS, s.message(), sig) for sig in signatures]


def _void_message(run_id, period: int, snapshot: int) -> dict:
    return {"runId": run_key(run_id), "period": period, "snapshot": snapshot}


def sign_void(signer: Signer, domain: Eip712Domain, run_id, period: int, snapshot: int) -> bytes:
    return sign_struct(signer, domain, "VoidPeriod", VOID_FIELDS, _void_message(run_id, period, snapshot))


def recover_void_signers(signatures, domain: Eip712Domain, run_id, period: int, snapshot: int) -> list[str]:
    msg = _void_message(run_id, period, snapshot)
    return [recover_struct_signer(domain, "VoidPeriod", VOID_FIELDS, msg, s) for s in signatures]


def _slash_message(offender: str, bps: int, evidence: bytes, snapshot: int) -> dict:
    return {"offender": to_checksum_address(offender), "bps": bps, "evidence": bytes(evidence), "snapshot": snapshot}


def slash_digest(domain: Eip712Domain, offender: str, bps: int, evidence: bytes, snapshot: int) -> bytes:
    return struct_digest(domain, "Slash", SLASH_FIELDS, _slash_message(offender, bps, evidence, snapshot))


def sign_slash(signer: Signer, domain: Eip712Domain, offender: str, bps: int, evidence: bytes, snapshot: int) -> bytes:
    """A validator's approval to slash `bps` of `offender`'s stake for `evidence` (receipt + kind hash)."""
    return sign_struct(signer, domain, "Slash", SLASH_FIELDS, _slash_message(offender, bps, evidence, snapshot))


def recover_slash_signers(signatures, domain: Eip712Domain, offender: str, bps: int, evidence: bytes, snapshot: int):
    msg = _slash_message(offender, bps, evidence, snapshot)
    return [recover_struct_signer(domain, "Slash", SLASH_FIELDS, msg, s) for s in signatures]


def sign_permit(signer: Signer, token_domain: Eip712Domain, spender: str, value: int, nonce: int, deadline: int):
    """EIP-2612 permit by `signer` for `spender`; returns (v, r, s) for `Staking.stakeWithPermit`."""
    account = _as_account(signer)
    message = {
        "owner": account.address,
        "spender": to_checksum_address(spender),
        "value": value,
        "nonce": nonce,
        "deadline": deadline,
    }
    signed = account.sign_message(_signable(token_domain, "Permit", PERMIT_FIELDS, message))
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


# ---------------------------------------------------------------- quorum sets


def order_by_signer(signed: Iterable[tuple[str, bytes]]) -> list[bytes]:
    """Signatures sorted by strictly increasing signer address, as the contracts require."""
    pairs = sorted(((int(addr, 16), sig) for addr, sig in signed), key=lambda p: p[0])
    for (a, _), (b, _) in zip(pairs, pairs[1:], strict=False):
        if a == b:
            raise AttestationError(f"signer {to_checksum_address(hex(a))} signed twice; keep one signature per signer")
    return [sig for _, sig in pairs]


def quorum_signatures(signers: Iterable[Signer], sign: Callable[[LocalAccount], bytes]) -> list[bytes]:
    """Sign with each signer (`sign(account) -> signature`) and order the results for the contracts."""
    accounts = [_as_account(s) for s in signers]
    return order_by_signer((a.address, sign(a)) for a in accounts)


class QuorumRejected(AttestationError):
    """A signature set the contracts would reject; `error_name`/`error_args` name the contract's custom error."""

    def __init__(self, error_name: str, args: tuple = ()):
        super().__init__(
            f"signature set rejected: {error_name}{args}; collect fresh signatures from validators active at "
            "the snapshot, one each, sorted by signer address"
        )
        self.error_name, self.error_args = error_name, tuple(args)


def recover_like_oz(digest: bytes, signature: bytes) -> str:
    """`ECDSA.recover(digest, signature)` of OpenZeppelin v5, errors included."""
    if len(signature) != 65:
        raise QuorumRejected("ECDSAInvalidSignatureLength", (len(signature),))
    r, s, v = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    if s > SECP256K1_HALF_N:
        raise QuorumRejected("ECDSAInvalidSignatureS", (signature[32:64],))
    if v not in (27, 28) or r == 0 or s == 0:
        raise QuorumRejected("ECDSAInvalidSignature")
    try:
        public = keys.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except Exception as exc:  # no point on the curve for this r
        raise QuorumRejected("ECDSAInvalidSignature") from exc
    return public.to_checksum_address()


def require_quorum_offchain(
    digest: bytes, signatures: Sequence[bytes], *, validator_stakes: Mapping[str, int], required: int
) -> int:
    """Signed weight of a valid quorum (stakes *at the snapshot*); QuorumRejected with the contract's error."""
    stakes = {to_checksum_address(a): int(s) for a, s in validator_stakes.items() if int(s) > 0}
    if not signatures:
        raise QuorumRejected("NoSignatures")
    previous, signed_stake = ZERO_ADDRESS, 0
    for signature in signatures:
        signer = recover_like_oz(digest, bytes(signature))
        if int(signer, 16) <= int(previous, 16):
            raise QuorumRejected("SignersNotSorted", (previous, signer))
        if signer not in stakes:
            raise QuorumRejected("NotAValidator", (signer,))
        signed_stake += stakes[signer]
        previous = signer
    if signed_stake < required:
        raise QuorumRejected("QuorumNotReached", (signed_stake, required))
    return signed_stake
