// Interpreter resolution order: setting, then the Python extension, then python3 on PATH.
import assert from "node:assert/strict";
import { test } from "node:test";

import { executableFromPythonApi, resolveInterpreter, venvDir, venvPython, type PythonEnvironmentsApi } from "../src/interpreter";

async function check(setting: string | undefined, fromExtension: () => Promise<string | undefined>, expected: string, platform: NodeJS.Platform = "linux") {
  const interpreter = await resolveInterpreter({ setting, pythonExtension: fromExtension, platform });
  assert.equal(`${interpreter.command} (${interpreter.source})`, expected);
}

test("the setting wins, and the Python extension is not even asked", async () => {
  await check("/opt/py/bin/python", () => assert.fail("asked the Python extension"), "/opt/py/bin/python (setting)");
});

test("then the Python extension's active environment", async () => {
  await check(undefined, async () => "/ws/.venv/bin/python", "/ws/.venv/bin/python (python-extension)");
});

test("then python3 on PATH (python on Windows)", async () => {
  await check(undefined, async () => undefined, "python3 (path)");
  await check(undefined, async () => "", "python3 (path)");
  await check(undefined, async () => undefined, "python (path)", "win32");
});

test("a Python extension that throws counts as no answer", async () => {
  await check(undefined, async () => {
    throw new Error("not activated");
  }, "python3 (path)");
});

test("venv paths per platform", () => {
  assert.equal(venvDir("/store"), "/store/venv");
  assert.equal(venvPython("/store/venv", "linux"), "/store/venv/bin/python");
  assert.equal(venvPython("C:\\store\\venv", "win32"), "C:\\store\\venv\\Scripts\\python.exe");
});

function api(active: { id: string; path: string } | undefined, resolved: string | undefined): PythonEnvironmentsApi {
  return {
    environments: {
      getActiveEnvironmentPath: () => active,
      resolveEnvironment: async () => (resolved === undefined ? undefined : { executable: { uri: { fsPath: resolved } } }),
    },
  };
}

test("Python extension API: active environment, resolved to its executable", async () => {
  assert.equal(await executableFromPythonApi(undefined), undefined);
  assert.equal(await executableFromPythonApi(api(undefined, undefined)), undefined);
  assert.equal(await executableFromPythonApi(api({ id: "x", path: "/ws/.venv" }, "/ws/.venv/bin/python")), "/ws/.venv/bin/python");
  assert.equal(await executableFromPythonApi(api({ id: "x", path: "/usr/bin/python3" }, undefined)), "/usr/bin/python3");
});
