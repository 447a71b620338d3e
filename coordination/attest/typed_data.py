"""EIP-712 plumbing of receipts and verdicts: re-exported from the one stack, `coordination.chain.eip712`.

    domain = attest_domain(chain_id=31337, verifying_contract=ledger_address)
    sig = sign_struct(key, domain, "WorkReceipt", WORK_RECEIPT_FIELDS, message)
    recover_struct_signer(domain, "WorkReceipt", WORK_RECEIPT_FIELDS, message, sig)   # -> '0x...'

Kept so that receipts, verdicts and audit draws keep their imports; there is one EIP-712 implementation.
"""

from coordination.chain.eip712 import (  # noqa: F401
    ATTEST_NAME as DOMAIN_NAME,
)
from coordination.chain.eip712 import (  # noqa: F401
    VERSION as DOMAIN_VERSION,
)
from coordination.chain.eip712 import (  # noqa: F401
    ZERO_ADDRESS,
    attest_domain,
    recover_struct_signer,
    sign_struct,
    struct_digest,
)
