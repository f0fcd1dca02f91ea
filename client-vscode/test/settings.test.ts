// Settings: the mapping to the server, and package.json as the one source of truth (README table,
// server keys and defaults in server/perfhint/settings.py).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { CLIENT_KEYS, configuredInterpreter, expandPath, explicitValue, needsRestart, SERVER_KEYS, serverConfig } from "../src/settings";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const table = require("../../scripts/settings-table.js") as { render(pkg: unknown): string; replaceTable(readme: string, table: string): string };

const CLIENT_DIR = path.join(__dirname, "..", "..");
const pkg = JSON.parse(fs.readFileSync(path.join(CLIENT_DIR, "package.json"), "utf8"));
const properties: Record<string, { default: unknown; enum?: string[] }> = pkg.contributes.configuration.properties;
const SERVER_SETTINGS = path.join(CLIENT_DIR, "..", "server", "perfhint", "settings.py");

function checkConfig(section: Record<string, unknown>, expected: Record<string, unknown>, workspaceFolder = "/ws"): void {
  assert.deepEqual(serverConfig(section, { workspaceFolder, home: "/home/me" }), expected);
}

test("server config: only server keys, unset ones left out", () => {
  checkConfig({ enable: true, samples: 32, interpreter: "/usr/bin/python3", decorations: true, bundlePath: "" }, { enable: true, samples: 32 });
  checkConfig({ metrics: null, hideBelow: { bytes: "1 MiB" } }, { hideBelow: { bytes: "1 MiB" } });
});

test("server config: bundlePath made absolute for the folder", () => {
  checkConfig({ bundlePath: "bundles/tiny" }, { bundlePath: path.join("/ws", "bundles/tiny") });
  checkConfig({ bundlePath: "${workspaceFolder}/b" }, { bundlePath: "/ws/b" });
  checkConfig({ bundlePath: "~/models/b" }, { bundlePath: "/home/me/models/b" });
  checkConfig({ bundlePath: "/abs/b" }, { bundlePath: "/abs/b" });
});

test("only values the user set count, in VS Code's precedence", () => {
  assert.equal(explicitValue(undefined), undefined);
  assert.equal(explicitValue({}), undefined);
  assert.equal(explicitValue({ globalValue: 8 }), 8);
  assert.equal(explicitValue({ globalValue: 8, workspaceValue: 16 }), 16);
  assert.equal(explicitValue({ globalValue: 8, workspaceValue: 16, workspaceFolderValue: false }), false);
  assert.equal(explicitValue({ workspaceValue: 16, globalLanguageValue: 4 }), 4); // [python] settings win
});

test("expandPath leaves an unknown variable alone rather than joining it", () => {
  assert.equal(expandPath("${env:HOME}/b", { workspaceFolder: "/ws" }), "${env:HOME}/b");
});

test("interpreter setting: a bare command stays a PATH lookup, a path is expanded", () => {
  assert.equal(configuredInterpreter("", {}), undefined);
  assert.equal(configuredInterpreter("  ", {}), undefined);
  assert.equal(configuredInterpreter("python3.12", { workspaceFolder: "/ws" }), "python3.12");
  assert.equal(configuredInterpreter(".venv/bin/python", { workspaceFolder: "/ws" }), path.join("/ws", ".venv/bin/python"));
  assert.equal(configuredInterpreter("~/py/bin/python", { home: "/home/me" }), "/home/me/py/bin/python");
});

test("restart keys: interpreter and bundlePath restart the server, others do not", () => {
  assert.equal(needsRestart((key) => key === "perfhint.interpreter"), true);
  assert.equal(needsRestart((key) => key === "perfhint.bundlePath"), true);
  assert.equal(needsRestart((key) => key === "perfhint.samples"), false);
});

test("package.json contributes exactly the server's settings plus the client's own", () => {
  const contributed = Object.keys(properties).map((name) => name.replace(/^perfhint\./, "")).sort();
  assert.deepEqual(contributed, [...SERVER_KEYS, ...CLIENT_KEYS].sort());
});

/** Ask the server's own settings module (stdlib only) what it does with each contributed key. */
const SERVER_PROBE = `
import dataclasses, json, sys
sys.path.insert(0, sys.argv[1])
from perfhint import settings
samples = json.loads(sys.argv[2])
default = settings.Settings()
changed = {}
problems = []
for key, value in samples.items():
    merged, found = settings.merge(default, {key: value}, source="test")
    changed[key] = merged != default
    problems += found
print(json.dumps({"defaults": {k: v for k, v in dataclasses.asdict(default).items() if isinstance(v, (bool, int, str))},
                  "changed": changed, "problems": problems}))
`;

// A non-default value for every server setting, as the editor would send it.
const SAMPLE_VALUES: Record<string, unknown> = {
  enable: false, metrics: ["peak_memory"], hideBelow: { bytes: "1 MiB", seconds: "1 µs" }, samples: 7,
  runtimeDevice: "gpu", targetGpu: "A100-80GB", bundlePath: "/bundles/b", debounceMs: 250, baseline: "HEAD",
};

function askServer(): { defaults: Record<string, unknown>; changed: Record<string, boolean>; problems: string[] } {
  const stdout = execFileSync("python3", ["-c", SERVER_PROBE, path.join(CLIENT_DIR, "..", "server"), JSON.stringify(SAMPLE_VALUES)], { encoding: "utf8" });
  return JSON.parse(stdout);
}

test("the server reads every contributed server setting (perfhint.settings.merge)", () => {
  assert.deepEqual(Object.keys(SAMPLE_VALUES).sort(), [...SERVER_KEYS].sort());
  const answer = askServer();
  assert.deepEqual(answer.problems, []);
  for (const key of SERVER_KEYS) assert.equal(answer.changed[key], true, `the server ignores perfhint.${key}`);
});

test("defaults and choices match the server's", () => {
  const { defaults } = askServer();
  const expected: Record<string, string> = { enable: "enable", samples: "samples", runtimeDevice: "runtime_device", targetGpu: "target_gpu", debounceMs: "debounce_ms", baseline: "baseline" };
  for (const [key, field] of Object.entries(expected)) {
    assert.deepEqual(properties[`perfhint.${key}`].default, defaults[field], `perfhint.${key}`);
  }
  const source = fs.readFileSync(SERVER_SETTINGS, "utf8");
  const tuple = (name: string) => [...(new RegExp(`^${name} = \\((.*)\\)`, "m").exec(source)?.[1] ?? "").matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(properties["perfhint.runtimeDevice"].enum, tuple("RUNTIME_DEVICES"));
  assert.deepEqual(properties["perfhint.baseline"].enum, tuple("BASELINES"));
  assert.equal(properties["perfhint.decorations"].default, false);
});

test("README's settings table is the one generated from package.json (npm run docs)", () => {
  const readme = fs.readFileSync(path.join(CLIENT_DIR, "README.md"), "utf8");
  const expected = table.replaceTable(readme, table.render(pkg));
  assert.equal(readme, expected, "README.md's settings table is out of date: run `npm run docs`");
});

test("every contributed command is in the README", () => {
  const readme = fs.readFileSync(path.join(CLIENT_DIR, "README.md"), "utf8");
  for (const command of pkg.contributes.commands as { title: string }[]) {
    assert.ok(readme.includes(command.title), `README.md does not mention "${command.title}"`);
  }
});
