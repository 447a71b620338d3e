"""Everything between hivetune and its contracts (contracts/src, ABI + bytecode in contracts/artifacts).

Public API (import from the submodules; nothing heavy is imported here):

- `deploy`: `deploy_all(w3, deployer, DeployParams(...)) -> Deployment`; `Deployment.save/load(path)`
  (deployment.json, atomic), `Deployment.clients(w3) -> Clients(token, staking, ledger, governor, registry)`.
- `clients` / `governance`: typed clients (`StakingClient.stake(amount, sender=...)`,
  `LedgerClient.submit_period/void_period/claim`, `RegistryClient.lineage`, `GovernorClient.propose/
  cast_vote/execute/state`, `promotion_proposal(registry, run_id, cid, eval_digest)`).
- `signing`: validator EIP-712 signatures: `sign_period`, `recover_period_signers`, `period_digest`,
  `sign_void`, `sign_slash`, `quorum_signatures` (ordered for the contracts), `ledger_domain`,
  `staking_domain`, `run_key` (run id string -> bytes32).
- `merkle`: OZ StandardMerkleTree; `claims.ClaimTicket` (the `hivetune claim --claim-file` JSON).
- `revert`: reverts -> `ChainError(message, error_name, args)`; `clock`: `chain_now`, `advance_time`.
- `devnet`: anvil on a free port + deploy + funded accounts (`Devnet.start()`); `sandbox`: the same on
  in-process eth-tester for tests and benchmarks (`Sandbox.create()`, `expect_revert`).
- `connect`: `connect(rpc, deployment_path)` and `account_from_key(key)` for CLI commands.

One clock everywhere: ERC-6372 `mode=timestamp` (unbonding delay, challenge window and governor
voting delay/period are seconds).
"""
