"""A peer's rewards, period by period: units from its claim files, state from the ledger.

    reward_rows("0xAbc...", "outputs/claims", ledger=clients.ledger)
    # [{"period": 0, "units": 120, "totalUnits": 480, "amount": 250, "state": "claimed"}, ...]

States: `claimed`; `claimable` (challenge window over, not claimed); `pending` (window open);
`voided`; `unsettled` (the ledger has no such period); `unknown` (no ledger given).
"""

from __future__ import annotations

from pathlib import Path

from eth_utils import to_checksum_address

from coordination.verify.settlement import load_claim_file


def period_state(ledger, claim: dict) -> str:
    if ledger is None:
        return "unknown"
    from coordination.chain.clock import chain_now

    info = ledger.get_period(claim["runId"], claim["period"])
    if not info.exists:
        return "unsettled"
    if info.voided:
        return "voided"
    if ledger.is_claimed(claim["runId"], claim["period"], claim["peer"]):
        return "claimed"
    return "claimable" if chain_now(ledger.w3) >= info.challenge_ends_at else "pending"


def reward_rows(peer: str, claims_dir: str | Path, *, ledger=None) -> list[dict]:
    """One row per claim file of `peer` in `claims_dir`, oldest period first."""
    peer = to_checksum_address(peer)
    rows = []
    for path in sorted(Path(claims_dir).glob(f"{peer}-period*.json")):
        claim = load_claim_file(path)
        rows.append(
            {
                "period": claim["period"],
                "units": claim["units"],
                "totalUnits": int(claim["totalUnits"]),
                "amount": int(claim["reward"]) * claim["units"] // int(claim["totalUnits"]),
                "state": period_state(ledger, claim),
                "runId": "0x" + claim["runId"].hex(),
                "file": str(path),
            }
        )
    return sorted(rows, key=lambda r: r["period"])
