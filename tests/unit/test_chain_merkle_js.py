"""coordination/chain/merkle.py agrees bit for bit with @openzeppelin/merkle-tree (JS).

Runs node on a tiny script with the same values; skipped only when node or the npm packages
(`make setup`) are absent.
"""

import json
import shutil
import subprocess

import pytest

from coordination.chain.artifacts import contracts_dir
from coordination.chain.merkle import StandardMerkleTree

JS = """
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const values = JSON.parse(process.argv[1]);
const tree = StandardMerkleTree.of(values, ["address", "uint256"]);
const proofs = values.map((_, i) => tree.getProof(i));
console.log(JSON.stringify({ root: tree.root, proofs }));
"""

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (contracts_dir() / "node_modules/@openzeppelin/merkle-tree").is_dir(),
    reason="needs node + contracts/node_modules (run `make setup`)",
)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
def test_root_and_proofs_match_openzeppelin_js(n):
    values = [["0x" + f"{(i * 7919 + 1):040x}", str(10**18 * (i + 1) + i)] for i in range(n)]
    out = subprocess.run(
        ["node", "-e", JS, json.dumps(values)],
        cwd=contracts_dir(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    js = json.loads(out.stdout)
    tree = StandardMerkleTree.of([(a, int(u)) for a, u in values], ["address", "uint256"])
    assert "0x" + tree.root.hex() == js["root"]
    assert [["0x" + h.hex() for h in tree.proof(i)] for i in range(n)] == js["proofs"]
