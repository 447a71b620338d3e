"""Validators: audit receipts by recomputation, sign verdicts and contribution tables, settle periods.

- `receipt_audit.audit_receipt` / `validator.Validator`: signature and identity, records vs root,
  caps, counts, prompts, rewards and lengths on every record, seeded sampling + log-probs under the epoch's
  canonical checkpoint on a drawn share, and the round check (pay only what entered the model).
- `audit_draw`: which rollouts, from the validator's deterministic signature (unpredictable, checkable).
- `reconcile` (in process) / `aggregate` (from verdict reports): quorum rulings per receipt.
- `contributions`: (peer, units) table, its Merkle tree, exact payouts.
- `settlement`, `period_files`: Period signatures, submitPeriod, claim files, slashes.
- `quorum.require_quorum_offchain`: the contract's signature-set rules, same errors.
- `policy_pool.PolicyPool`: one base model, adapters by CID through a bounded LRU, off-spec adapters refused.
- The cheats the tests and benches play live in tests/support/adversaries.py.
"""
