// node --test tests/js/: long-poll.js as the package a React app installs (@eventi/long-poll).
// Run from pytest by tests/test_long_poll_js.py. npm runs offline: a local folder needs no registry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const PACKAGE = fileURLToPath(new URL("../../eventi/static/js/", import.meta.url));
const npm = (args, cwd) => execFileSync("npm", [...args, "--offline", "--no-audit", "--no-fund", "--loglevel=error"],
                                        { cwd, encoding: "utf8", env: { ...process.env, npm_config_update_notifier: "false" } });

test("the package holds the module and its types only", () => {
  const [packed] = JSON.parse(npm(["pack", "--dry-run", "--json"], PACKAGE));
  assert.equal(packed.name, "@eventi/long-poll");
  assert.deepEqual(packed.files.map((f) => f.path).sort(), ["long-poll.d.ts", "long-poll.js", "package.json"]);
});

test("npm install <path> gives an app `import { waitForPayment } from \"@eventi/long-poll\"`", async (t) => {
  const app = mkdtempSync(join(tmpdir(), "long-poll-app-"));
  t.after(() => rmSync(app, { recursive: true, force: true }));
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  npm(["install", PACKAGE], app);
  const manifest = JSON.parse(readFileSync(join(app, "package.json"), "utf8"));
  assert.ok(manifest.dependencies["@eventi/long-poll"].startsWith("file:"));
  writeFileSync(join(app, "entry.mjs"), 'export * from "@eventi/long-poll";\n');
  const module = await import(pathToFileURL(join(app, "entry.mjs")).href);
  assert.deepEqual(Object.keys(module).sort(), ["WaitError", "waitForPayment"]);
  const types = JSON.parse(readFileSync(join(app, "node_modules/@eventi/long-poll/package.json"), "utf8"));
  assert.equal(types.exports["."].types, "./long-poll.d.ts");
});

test("the declarations name every export and every option the module reads", () => {
  const source = readFileSync(join(PACKAGE, "long-poll.js"), "utf8");
  const types = readFileSync(join(PACKAGE, "long-poll.d.ts"), "utf8");
  const options = new Set([...source.matchAll(/\bopts\.(\w+)/g)].map((m) => m[1]));
  assert.ok(options.size > 15, [...options].join());
  for (const name of options) assert.match(types, new RegExp(`\\n  ${name}\\?: `), name);
  for (const name of ["waitForPayment", "WaitError"]) {
    assert.match(source, new RegExp(`export (async function|class) ${name}\\b`));
    assert.match(types, new RegExp(`export (function|class) ${name}\\b`));
  }
});
