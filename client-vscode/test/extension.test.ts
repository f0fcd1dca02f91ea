// The wiring: activation, setup, the language client's options and middleware, commands, status bar,
// decorations, restarts. `vscode` and `vscode-languageclient/node` are the hand-written mocks in
// vscode-mock.ts; probing and installing Python are faked through the extension's Dependencies.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, test } from "node:test";

import { install, makeDocument, makeEditor, mock, Uri, type FakeLanguageClient } from "./vscode-mock";

install();
// Required after install(): these modules import `vscode`.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const extension = require("../src/extension") as typeof import("../src/extension");
import type { Probe, RunResult } from "../src/setup";

const PACKAGE = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"));
const READY: Probe = { ran: true, version: [3, 11, 7], perfhint: "0.1.0" };
const MISSING: Probe = { ran: true, version: [3, 11, 7], error: "ModuleNotFoundError: No module named 'perfhint'" };
const WHEEL_NAME = "perfhint-0.1.0-py3-none-any.whl";

let scratch: string;
let controllers: InstanceType<typeof extension.Controller>[] = [];

interface Fakes {
  probes: Record<string, Probe>;
  runs: string[][];
  run?: (command: string, args: string[]) => RunResult;
}

function setUpDirs(): { extensionDir: string; storage: string } {
  const extensionDir = path.join(scratch, "extension");
  fs.mkdirSync(path.join(extensionDir, "python"), { recursive: true });
  fs.writeFileSync(path.join(extensionDir, "python", WHEEL_NAME), "wheel bytes");
  return { extensionDir, storage: path.join(scratch, "storage") };
}

async function activate(fakes: Fakes): Promise<InstanceType<typeof extension.Controller>> {
  const { extensionDir, storage } = setUpDirs();
  const context = {
    subscriptions: [] as { dispose(): unknown }[],
    extensionUri: Uri.file(extensionDir),
    globalStorageUri: Uri.file(storage),
  };
  const controller = new extension.Controller(context as never, {
    probe: async (python) => fakes.probes[python] ?? { ran: false, notFound: true, error: "ENOENT" },
    runner: {
      run: async (command, args) => {
        fakes.runs.push([command, ...args]);
        if (args.includes("venv")) {
          const venvPython = path.join(args[args.length - 1], "bin", "python");
          fs.mkdirSync(path.dirname(venvPython), { recursive: true });
          fs.writeFileSync(venvPython, "");
        }
        return fakes.run?.(command, args) ?? { code: 0, output: "" };
      },
    },
    createClient: (require("../src/server") as typeof import("../src/server")).createClient,
    platform: "linux",
    env: {},
  });
  controllers.push(controller);
  await controller.start();
  return controller;
}

function lastClient(): FakeLanguageClient {
  assert.ok(mock.clients.length > 0, "no language client was created");
  return mock.clients[mock.clients.length - 1];
}

/** The compare table the extension asked the Markdown preview to show (uri and rendered text). */
function previews(): { uri: string; text: string }[] {
  return mock.executed
    .filter((call) => call.id === "markdown.showPreviewToSide")
    .map((call) => {
      const uri = call.args[0] as Uri;
      return { uri: uri.toString(), text: mock.contentProviders.get(uri.scheme)!.provideTextDocumentContent(uri) };
    });
}

async function settle(): Promise<void> {
  for (let round = 0; round < 5; round++) await new Promise((resolve) => setImmediate(resolve));
}

beforeEach(() => {
  mock.reset();
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "perfhint-client-test-"));
  mock.workspaceFolders = [{ uri: Uri.file("/ws"), name: "ws", index: 0 }];
});

afterEach(async () => {
  for (const controller of controllers.splice(0)) await controller.dispose();
  fs.rmSync(scratch, { recursive: true, force: true });
});

test("activation registers every contributed command", async () => {
  await activate({ probes: { python3: READY }, runs: [] });
  for (const command of PACKAGE.contributes.commands as { command: string }[]) {
    assert.ok(mock.commands.has(command.command), `${command.command} is contributed but not registered`);
  }
  assert.deepEqual(Object.values(extension.COMMANDS).sort(), (PACKAGE.contributes.commands as { command: string }[]).map((c) => c.command).sort());
});

test("activation events cover Python, C and C++", () => {
  assert.deepEqual(PACKAGE.activationEvents, ["onLanguage:python", "onLanguage:c", "onLanguage:cpp", "onLanguage:cuda-cpp"]);
});

test("a Python that runs perfhint starts the server with it, with the server's settings", async () => {
  mock.config.interpreter = "/opt/py/bin/python";
  await activate({ probes: { "/opt/py/bin/python": READY }, runs: [] });
  const client = lastClient();
  assert.equal(client.started, true);
  assert.equal(client.serverOptions.run.command, "/opt/py/bin/python");
  assert.deepEqual(client.serverOptions.run.args, ["-m", "perfhint", "serve"]);
  assert.deepEqual([...new Set(client.clientOptions.documentSelector.map((selector) => selector.language))], ["python", "c", "cpp", "cuda-cpp"]);
  // Nothing set: nothing sent, so a project's [tool.perfhint] is not overridden by editor defaults.
  assert.deepEqual(client.clientOptions.initializationOptions, { perfhint: {} });
  assert.ok(mock.output.some((line) => line.includes("/opt/py/bin/python (from the perfhint.interpreter setting): Python 3.11.7, perfhint 0.1.0")));
});

test("workspace/configuration gets the server keys only, with paths made absolute", async () => {
  await activate({ probes: { python3: READY }, runs: [] });
  Object.assign(mock.config, { bundlePath: "bundles/tiny", decorations: true, interpreter: "python3", samples: 8 });
  const configuration = lastClient().clientOptions.middleware.workspace.configuration;
  const answers = await configuration(
    { items: [{ section: "perfhint", scopeUri: "file:///ws/a.py" }, { section: "editor" }] },
    {},
    async () => [{ raw: true }, { tabSize: 4 }],
  );
  assert.deepEqual(answers, [
    { samples: 8, bundlePath: path.join("/ws", "bundles/tiny") },
    { tabSize: 4 },
  ]);
});

test("no perfhint: offer, then Install builds the private environment and starts from it", async () => {
  const fakes: Fakes = { probes: { python3: MISSING }, runs: [] };
  mock.answer = (message) => (message.items.includes("Install") ? "Install" : undefined);
  const controller = await activate(fakes);
  const storage = path.join(scratch, "storage");
  const venvPython = path.join(storage, "venv", "bin", "python");
  fakes.probes[venvPython] = READY;
  await settle();
  await controller.enqueue(async () => undefined); // wait for the install queued by the click
  const offer = mock.messages.find((message) => message.items.includes("Install"));
  assert.match(offer!.text, /perfhint is not installed for python3\. Install the perfhint server into a private environment\?/);
  const wheel = path.join(scratch, "extension", "python", WHEEL_NAME);
  assert.deepEqual(fakes.runs, [
    ["python3", "-m", "venv", "--clear", path.join(storage, "venv")],
    [venvPython, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", wheel],
  ]);
  assert.equal(lastClient().serverOptions.run.command, venvPython);
  assert.equal(fs.readFileSync(path.join(storage, "venv", "perfhint-wheel.txt"), "utf8"), `${WHEEL_NAME} 11\n`);
  assert.equal(controller.state, "running");
});

test("the private environment is reused on the next start", async () => {
  const storage = path.join(scratch, "storage");
  const venvPython = path.join(storage, "venv", "bin", "python");
  fs.mkdirSync(path.dirname(venvPython), { recursive: true });
  fs.writeFileSync(venvPython, "");
  fs.writeFileSync(path.join(storage, "venv", "perfhint-wheel.txt"), `${WHEEL_NAME} 11\n`);
  const fakes: Fakes = { probes: { python3: MISSING, [venvPython]: READY }, runs: [] };
  await activate(fakes);
  assert.deepEqual(fakes.runs, []);
  assert.equal(lastClient().serverOptions.run.command, venvPython);
  assert.equal(mock.messages.length, 0);
});

test("an install failure is one line with the fix, and pip's output is in the log", async () => {
  const fakes: Fakes = {
    probes: { python3: MISSING },
    runs: [],
    run: (_command, args) => (args.includes("pip") ? { code: 1, output: "ERROR: Could not find a version that satisfies the requirement onnxruntime>=1.20" } : { code: 0, output: "" }),
  };
  mock.answer = (message) => (message.items.includes("Install") ? "Install" : undefined);
  const controller = await activate(fakes);
  await settle();
  await controller.enqueue(async () => undefined);
  const error = mock.messages.find((message) => message.kind === "error");
  assert.ok(error !== undefined, "no error shown");
  assert.match(error.text, /^perfhint: pip could not download the server's dependencies from PyPI\. .*See Output > perfhint for the log\.$/);
  assert.deepEqual(error.items, ["Show output", "Retry"]);
  assert.equal(controller.state, "failed");
  assert.equal(mock.clients.length, 0);
  assert.equal(mock.statusItem.text, "$(error) perfhint");
});

test("no Python at all: one line naming the setting", async () => {
  await activate({ probes: {}, runs: [] });
  const error = mock.messages.find((message) => message.kind === "error");
  assert.equal(error?.text, "perfhint: no Python found (`python3` cannot be started). Install Python 3.10+ or set perfhint.interpreter to one.");
});

test("the Python extension's active environment is used when the setting is empty", async () => {
  mock.extensions.set("ms-python.python", {
    isActive: true,
    exports: {
      environments: {
        getActiveEnvironmentPath: () => ({ id: "venv", path: "/ws/.venv" }),
        resolveEnvironment: async () => ({ executable: { uri: { fsPath: "/ws/.venv/bin/python" } } }),
      },
    },
  });
  await activate({ probes: { "/ws/.venv/bin/python": READY }, runs: [] });
  assert.equal(lastClient().serverOptions.run.command, "/ws/.venv/bin/python");
});

test("changing perfhint.interpreter restarts the server with the new one", async () => {
  const controller = await activate({ probes: { python3: READY, "/new/python": READY }, runs: [] });
  const first = lastClient();
  mock.changeConfig({ interpreter: "/new/python" });
  await settle();
  await controller.enqueue(async () => undefined);
  assert.equal(first.stopped, true);
  assert.equal(mock.clients.length, 2);
  assert.equal(lastClient().serverOptions.run.command, "/new/python");
});

test("changing a server-only setting does not restart (the server pulls it)", async () => {
  const controller = await activate({ probes: { python3: READY }, runs: [] });
  mock.changeConfig({ samples: 8 });
  await settle();
  await controller.enqueue(async () => undefined);
  assert.equal(mock.clients.length, 1);
});

test("compare file with HEAD shows the server's rows as a table beside the file", async () => {
  await activate({ probes: { python3: READY }, runs: [] });
  const document = makeDocument("/ws/kernels.py", "python", "def f():\n    pass\n");
  mock.activeTextEditor = makeEditor(document);
  let asked: unknown;
  mock.server.commands.set("perfhint.compareWithHead", (args) => {
    asked = args;
    return {
      uri: "file:///ws/kernels.py", revision: "HEAD", reason: null,
      rows: [{ key: "function:f", name: "f", kind: "function", line: 0, metric: "peak_memory", unit: "MiB", before: 10, after: 13.1, delta: 3.1, percent: 31, status: "changed", before_text: "10 MiB", after_text: "13 MiB", delta_text: "+3.1 MiB" }],
    };
  });
  await mock.commands.get("perfhint.compareFileWithHead")!();
  assert.deepEqual(asked, ["file:///ws/kernels.py"]);
  const [preview] = previews();
  assert.equal(preview.uri, "perfhint-compare:///kernels.py vs HEAD.md");
  assert.match(preview.text, /\| f +\| function \| 1 +\| peak_memory \| 10 MiB +\| 13 MiB \| \+3\.1 MiB \|/);
});

test("without the Markdown extension the table opens as a text document", async () => {
  await activate({ probes: { python3: READY }, runs: [] });
  mock.commands.set("markdown.showPreviewToSide", () => {
    throw new Error("command 'markdown.showPreviewToSide' not found");
  });
  mock.activeTextEditor = makeEditor(makeDocument("/ws/a.py", "python"));
  mock.server.commands.set("perfhint.compareWithHead", () => ({ uri: "file:///ws/a.py", revision: "HEAD", rows: [] }));
  await mock.commands.get("perfhint.compareFileWithHead")!();
  assert.equal(mock.shown.length, 1);
  assert.match(mock.shown[0].text, /^# perfhint: a\.py vs HEAD/);
});

test("a code lens click (the server's own command) shows the table too", async () => {
  await activate({ probes: { python3: READY }, runs: [] });
  const executeCommand = lastClient().clientOptions.middleware.executeCommand;
  await executeCommand("perfhint.compareWithHead", ["file:///ws/k.py"], async () => ({ uri: "file:///ws/k.py", revision: "HEAD", rows: [] }));
  assert.equal(previews().length, 1);
  assert.match(previews()[0].text, /No regions to compare/);
});

test("a compare error is a warning line, not a table", async () => {
  await activate({ probes: { python3: READY }, runs: [] });
  mock.activeTextEditor = makeEditor(makeDocument("/ws/a.py", "python"));
  mock.server.commands.set("perfhint.compareWithHead", () => ({ uri: "file:///ws/a.py", error: "no model bundle" }));
  await mock.commands.get("perfhint.compareFileWithHead")!();
  assert.deepEqual(mock.messages.map((message) => message.text), ["no model bundle"]);
  assert.equal(previews().length + mock.shown.length, 0);
});

test("status bar: model from the bundle's manifest, device, and Σ Δ from the code lenses", async () => {
  const bundle = path.join(scratch, "bundle");
  fs.mkdirSync(bundle);
  fs.writeFileSync(path.join(bundle, "manifest.json"), JSON.stringify({ model: { name: "tiny", version: "abc", purpose: "test" } }));
  mock.config.bundlePath = bundle;
  const document = makeDocument("/ws/k.py", "python");
  mock.activeTextEditor = makeEditor(document);
  mock.server.codeLens = ["perfhint: [TEST model] largest peak_memory ≈ 12 MiB in f · Σ Δ +3.1 MiB vs HEAD"];
  await activate({ probes: { python3: READY }, runs: [] });
  await settle();
  assert.equal(mock.statusItem.text, "perfhint: tiny (test) · cpu · Σ Δ +3.1 MiB");
  // Later lenses arrive through the middleware, on their way to the editor.
  const provideCodeLenses = lastClient().clientOptions.middleware.provideCodeLenses;
  await provideCodeLenses(document, {}, async () => [{ command: { title: "perfhint: [TEST model] largest peak_memory ≈ 12 MiB in f · Σ Δ −1 MiB vs HEAD" } }]);
  assert.equal(mock.statusItem.text, "perfhint: tiny (test) · cpu · Σ Δ −1 MiB");
});

test("toggle asks the server, shows 'off', and is re-applied after a restart", async () => {
  let enabled = true;
  mock.server.commands.set("perfhint.toggle", () => ({ enabled: (enabled = !enabled) }));
  mock.activeTextEditor = makeEditor(makeDocument("/ws/k.py", "python"));
  const controller = await activate({ probes: { python3: READY }, runs: [] });
  await mock.commands.get("perfhint.toggleHints")!();
  assert.equal(enabled, false);
  assert.match(mock.statusItem.text, / · off$/);
  enabled = true; // a restarted server starts enabled
  await mock.commands.get("perfhint.restartServer")!();
  await controller.enqueue(async () => undefined);
  assert.equal(mock.clients.length, 2);
  assert.equal(enabled, false, "the toggle was not re-applied to the new server");
});

test("decorations: the editor gets no inlay hints, the hints are painted coloured instead", async () => {
  mock.config.decorations = true;
  const document = makeDocument("/ws/k.py", "python", "def f():\n    pass\n");
  const editor = makeEditor(document);
  mock.activeTextEditor = editor;
  mock.visibleTextEditors = [editor];
  mock.server.inlayHints = [
    { position: { line: 0, character: 8 }, label: "≈ 1.5 GiB" },
    { position: { line: 1, character: 8 }, label: "≈ 12 MiB" },
  ];
  await activate({ probes: { python3: READY }, runs: [] });
  const provideInlayHints = lastClient().clientOptions.middleware.provideInlayHints;
  const hints = await provideInlayHints(document, {}, {}, async () => assert.fail("inlay hints were requested for the editor"));
  assert.deepEqual(hints, []);
  await new Promise((resolve) => setTimeout(resolve, 250));
  const painted = [...editor.decorations.values()].flat() as { renderOptions: { after: { contentText: string } } }[];
  assert.deepEqual(painted.map((item) => item.renderOptions.after.contentText).sort(), ["≈ 1.5 GiB", "≈ 12 MiB"]);
  const [small, , large] = mock.decorationTypes;
  assert.equal(editor.decorations.get(large)?.length, 1);
  assert.equal(editor.decorations.get(small)?.length, 1);
});

test("decorations off (the default): inlay hints pass through untouched", async () => {
  await activate({ probes: { python3: READY }, runs: [] });
  const provideInlayHints = lastClient().clientOptions.middleware.provideInlayHints;
  const hints = await provideInlayHints(makeDocument("/ws/k.py", "python"), {}, {}, async () => ["hint"]);
  assert.deepEqual(hints, ["hint"]);
});
