"""A peer's rewards, period by period: units from its claim files, state from the ledger.

    reward_rows("0xAbc...", "outputs/claims", ledger=clients.ledger)
    # [{"period": 0, "units": 120, "totalUnits": 480, "amount": 250, "state": "claimed"}, ...]

States: `claimed`; `claimable` (challenge window over, claim window open, not claimed); `pending`
(challenge window open); `expired` (claim window closed); `swept` (remainder returned to the pool);
`voided`; `unsettled` (the ledger has no such period); `unknown` (no ledger given).
"""

from __future__ import annotations

from pathlib import Path

from eth_utils import to_checksum_address

from coordination.chain.claims import ClaimTicket


def period_state(ledger, ticket: ClaimTicket) -> str:
    if ledger is None:
        return "unknown"
    from coordination.chain.clock import chain_now

    info = ledger.get_period(ticket.run_key, ticket.period)
    if not info.exists:
        return "unsettled"
    if info.voided:
        return "voided"
    if ledger.is_claimed(ticket.run_key, ticket.period, ticket.peer):
        return "claimed"
    if info.swept:
        return "swept"
    now = chain_now(ledger.w3)
    if now < info.challenge_ends_at:
        return "pending"
    return "claimable" if now < info.challenge_ends_at + ledger.claim_window() else "expired"


def reward_rows(peer: str, claims_dir: str | Path, *, ledger=None) -> list[dict]:
    """One row per claim file of `peer` in `claims_dir`, oldest period first."""
    peer = to_checksum_address(peer)
    rows = []
    for path in sorted(Path(claims_dir).glob(f"{peer}-period*.json")):
        t = ClaimTicket.load(path)
        rows.append(
            {
                "period": t.period,
                "firstEpoch": t.first_epoch,
                "lastEpoch": t.last_epoch,
                "units": t.units,
                "totalUnits": t.total_units,
                "amount": t.amount,
                "state": period_state(ledger, t),
                "runId": "0x" + t.run_key.hex(),
                "file": str(path),
            }
        )
    return sorted(rows, key=lambda r: r["period"])
