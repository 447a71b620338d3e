"""Everything between hivetune and its contracts (contracts/src, ABI + bytecode in contracts/artifacts).

Public API (import from the submodules; nothing heavy is imported here):

- `deploy`: `deploy_all(w3, deployer, DeployParams(...)) -> Deployment`; `Deployment.save/load(path)`
  (deployment.json, atomic), `Deployment.clients(w3) -> Clients(token, staking, ledger, timelock, governor,
  registry)`.
- `clients` / `governance`: typed clients (`StakingClient.stake/activate_validator/slash(bps, snapshot)`,
  `LedgerClient.submit_period(PeriodSettlement)/void_period/claim/sweep`, `RegistryClient.nominate/fix_seed/
  record_eval/lineage`, `GovernorClient.propose/cast_vote/queue/execute/state`, `promotion_proposal`,
  `rollback_proposal`, `decode_actions` (what a proposal executes, from its calldata)).
- `eip712`: the one EIP-712 stack: domains, `PeriodSettlement`, `sign_period`, `sign_void`, `sign_slash`,
  `sign_struct`/`recover_struct_signer` (receipts, verdicts, evals), `quorum_signatures`,
  `require_quorum_offchain` (the twin of `Staking.requireQuorumAt`), `run_key`.
- `merkle`: OZ StandardMerkleTree; `claims.ClaimTicket` (the one claim-file model, `hivetune claim --claim-file`).
- `revert`: reverts -> `ChainError(message, error_name, args)`; `clock`: `chain_now`, `advance_time`.
- `devnet`: anvil on a free port + deploy + funded accounts (`Devnet.start()`); `sandbox`: the same on
  in-process eth-tester for tests and benchmarks (`Sandbox.create()`, `revert_of`).
- `connect`: `connect(rpc, deployment_path)` (checked chain id and code) and `resolve_rpc`; `keys`: a signing
  key from `--key-file` or $HIVETUNE_KEY (`load_account`, `write_key_file`), never from argv.

One clock everywhere: ERC-6372 `mode=timestamp` (unbonding and activation delays, challenge and claim
windows, governor voting delay/period and the timelock delay are seconds; stake snapshots are timestamps).
"""
