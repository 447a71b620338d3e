"""Validators: audit receipts by recomputation, sign verdicts, agree on rulings, settle a period's payout.

- `run_facts`: `RunFacts`, what every audit checks against, and `facts_for_run` that builds them from run.yaml
  (the epoch board's canonical checkpoints and rounds, the base model's EOS / vocabulary, the `PolicyPool`).
- `audit`: the draw (which rollouts, from the validator's deterministic signature: unpredictable, checkable),
  the checks on each record (prompt, RL reward, length, seeded sampling + log-probs under the epoch's
  canonical checkpoint), and `audit_receipt`: signature and identity, records vs root, caps, counts, the drawn
  share's forward passes, and the round check (pay only what entered the model).
- `validator`: `Validator` (audits an epoch's receipts, signs verdicts, re-checks others' findings) and what
  `hivetune validate` does with it (`run_validator`, `validate_epochs`).
- `rulings`: `Finding` / `Verdict` (signed EIP-712), `reconcile_epoch` (in process) and `aggregate_reports`
  (from verdict reports): one stake-quorum ruling per receipt.
- `payout`: the (peer, units) table and its Merkle tree, exact payout shares, Period signatures and
  submitPeriod, period documents and claim files, slashes, and a peer's payout status.
- `policy_pool.PolicyPool`: one base model, adapters by CID through a bounded LRU, off-spec adapters refused.
- The cheats the tests and benches play live in tests/support/adversaries.py.
"""
