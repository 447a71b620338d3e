"""Validators: audit receipts by recomputation, sign verdicts and contribution tables, settle periods.

- `receipt_audit.audit_receipt` / `validator.Validator`: signature and identity, records vs root,
  counts, prompts and rewards on every record, seeded sampling + log-probs on a drawn share.
- `audit_draw`: which rollouts, from the validator's deterministic signature (unpredictable, checkable).
- `reconcile` (in process) / `aggregate` (from verdict reports): quorum rulings per receipt.
- `contributions`: (peer, units) table, its Merkle tree, exact payouts.
- `settlement`, `period_files`: Period signatures, submitPeriod, claim files, slashes.
- `quorum.require_quorum_offchain`: the contract's signature-set rules, same errors.
- `adversaries.Cheat`: the cheats the tests and `bench/verify_cost.py` play.
"""
