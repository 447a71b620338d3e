// Compile contracts/src/*.sol with solc-js (standard JSON) into contracts/artifacts/<Name>.json.
//
//     cd contracts && node compile.js        (or: make contracts)
//     ARTIFACTS_OUT=/tmp/x node compile.js   (write elsewhere: the reproducibility test does this)
//
// Every source the compiler sees (ours + the OpenZeppelin files they import, resolved from
// node_modules) is read here and passed inline, so the build is exactly these bytes. Each artifact
// records `sources` = {path: sha256(content)} and `sourceHash` = sha256 over the lines
// "<path> <sha256>\n" (sorted by path) followed by the JSON of the compiler settings. The Python
// test tests/unit/test_chain_artifacts.py recomputes both and fails when an artifact is stale.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = __dirname;
const SRC = path.join(ROOT, "src");
const OUT = process.env.ARTIFACTS_OUT || path.join(ROOT, "artifacts"); // tests compile into a temp dir
const SETTINGS = {
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

const sha256 = (text) => crypto.createHash("sha256").update(text).digest("hex");

function resolveFile(importPath) {
  if (importPath.startsWith("src/")) return path.join(ROOT, importPath);
  return path.join(ROOT, "node_modules", importPath);
}

function importsOf(content) {
  const re = /^\s*import\s+(?:[^"']*from\s+)?["']([^"']+)["']/gm;
  return [...content.matchAll(re)].map((m) => m[1]);
}

function normalize(fromPath, importPath) {
  if (!importPath.startsWith(".")) return importPath;
  return path.posix.normalize(path.posix.join(path.posix.dirname(fromPath), importPath));
}

function collectSources(entries) {
  const sources = {};
  const todo = [...entries];
  while (todo.length) {
    const p = todo.pop();
    if (sources[p]) continue;
    const content = fs.readFileSync(resolveFile(p), "utf8");
    sources[p] = { content };
    for (const imp of importsOf(content)) todo.push(normalize(p, imp));
  }
  return sources;
}

function sourceDigest(sources) {
  const lines = Object.keys(sources)
    .sort()
    .map((p) => `${p} ${sha256(sources[p].content)}\n`)
    .join("");
  const { outputSelection, ...hashed } = SETTINGS;
  return sha256(lines + JSON.stringify(hashed));
}

function main() {
  const entries = fs.readdirSync(SRC).filter((f) => f.endsWith(".sol")).sort().map((f) => `src/${f}`);
  const sources = collectSources(entries);
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) console.error(e.formattedMessage);
  if (errors.length) process.exit(1);
  const fileHashes = Object.fromEntries(Object.keys(sources).sort().map((p) => [p, sha256(sources[p].content)]));
  const sourceHash = sourceDigest(sources);
  fs.mkdirSync(OUT, { recursive: true });
  for (const file of entries) {
    for (const [name, c] of Object.entries(output.contracts[file])) {
      const artifact = {
        contractName: name,
        sourceName: file,
        solcVersion: solc.version(),
        settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer },
        sourceHash,
        sources: fileHashes,
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      };
      fs.writeFileSync(path.join(OUT, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
      console.log(`${name}: ${(c.evm.deployedBytecode.object.length / 2).toLocaleString()} bytes deployed`);
    }
  }
}

main();
