/**
 * The extension: wires settings, setup, the language client, commands, the status bar and the
 * optional decorations together. Decisions live in the plain modules (settings, interpreter, setup,
 * model, status, decorations, compare), which are unit-tested without VS Code; this file only
 * connects them to the VS Code API.
 *
 * What is hard:
 * - **One server at a time.** Starting, installing and restarting are serialised on one queue, so
 *   a settings change during an install waits for it instead of racing it. A prompt the user has
 *   not answered yet does not hold the queue.
 * - **Never silent.** Every state (setting up, installing, failed, stopped, hints off) shows in the
 *   status bar, and every failure is one line with its fix plus the log in Output > perfhint.
 * - **The toggle outlives a restart.** `perfhint.toggle` flips the server's session state; the
 *   client remembers it and re-applies it to a restarted server, until the setting itself changes.
 */

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";
import { State, type LanguageClient } from "vscode-languageclient/node";

import { fileName, isCompareResult, renderCompare } from "./compare";
import { COLOURS, labelText, level, type Level } from "./decorations";
import {
  describeSource,
  executableFromPythonApi,
  resolveInterpreter,
  venvDir,
  venvMarker,
  venvPython,
  type Interpreter,
  type PythonEnvironmentsApi,
} from "./interpreter";
import { bundleDirectory, manifestPath, parseManifest, type ModelInfo } from "./model";
import { probePython, processRunner } from "./process";
import * as server from "./server";
import { configuredInterpreter, explicitValue, needsRestart, SECTION, SERVER_KEYS, serverConfig, expandPath } from "./settings";
import { decide, installSteps, pickWheel, runInstall, tooOld, usable, versionText, type Decision, type Probe, type Runner, type ShippedWheel } from "./setup";
import { statusView, summariseLenses, type LensSummary, type ServerState } from "./status";

export const COMMANDS = {
  toggle: "perfhint.toggleHints",
  compare: "perfhint.compareFileWithHead",
  restart: "perfhint.restartServer",
  showOutput: "perfhint.showOutput",
  install: "perfhint.installServer",
} as const;

export const COMPARE_SCHEME = "perfhint-compare";
const PYTHON_EXTENSION = "ms-python.python";
const BUNDLE_RESTART_DELAY_MS = 1500; // an export writes several files; restart once, after the last
const LENS_REFETCH_MS = [1500, 5000]; // after a save, for editors that do not render code lenses

export interface Dependencies {
  probe(python: string): Promise<Probe>;
  runner: Runner;
  createClient: typeof server.createClient;
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
}

export function defaultDependencies(): Dependencies {
  return { probe: probePython, runner: processRunner, createClient: server.createClient, platform: process.platform, env: process.env };
}

let controller: Controller | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<Controller> {
  controller = new Controller(context, defaultDependencies());
  await controller.start();
  return controller;
}

export async function deactivate(): Promise<void> {
  await controller?.dispose();
  controller = undefined;
}

export class Controller {
  readonly output: vscode.OutputChannel;
  client: LanguageClient | undefined;
  state: ServerState = "stopped";
  private stateMessage: string | undefined;
  private enabledOverride: boolean | undefined;
  private interpreter: Interpreter | undefined;
  private model: ModelInfo | undefined;
  private readonly lenses = new Map<string, LensSummary>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly statusItem: vscode.StatusBarItem;
  private readonly compareTexts = new Map<string, string>();
  private readonly compareChanged = new vscode.EventEmitter<vscode.Uri>();
  private readonly painter: DecorationPainter;
  private bundleWatcher: vscode.FileSystemWatcher | undefined;
  private bundleTimer: NodeJS.Timeout | undefined;
  private pythonApi: PythonEnvironmentsApi | undefined | null = null; // null: not looked up yet
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly deps: Dependencies,
  ) {
    this.output = vscode.window.createOutputChannel("perfhint");
    this.statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
    this.statusItem.command = { title: "perfhint commands", command: "workbench.action.quickOpen", arguments: [">perfhint: "] };
    this.painter = new DecorationPainter((document) => this.fetchHints(document));
    this.disposables.push(this.output, this.statusItem, this.compareChanged, this.painter);
  }

  // --- lifecycle --------------------------------------------------------------------------------

  async start(): Promise<void> {
    const register = (id: string, run: (...args: unknown[]) => unknown) =>
      this.disposables.push(vscode.commands.registerCommand(id, run));
    register(COMMANDS.toggle, () => this.toggle());
    register(COMMANDS.compare, (uri?: unknown) => this.compare(uri instanceof vscode.Uri ? uri : undefined));
    register(COMMANDS.restart, () => this.restart());
    register(COMMANDS.showOutput, () => this.output.show(true));
    register(COMMANDS.install, () => this.enqueue(() => this.installOnRequest()));
    this.disposables.push(
      vscode.workspace.registerTextDocumentContentProvider(COMPARE_SCHEME, {
        onDidChange: this.compareChanged.event,
        provideTextDocumentContent: (uri) => this.compareTexts.get(uri.toString()) ?? "",
      }),
      vscode.workspace.onDidChangeConfiguration((event) => this.configurationChanged(event)),
      vscode.window.onDidChangeActiveTextEditor((editor) => this.activeEditorChanged(editor)),
      vscode.window.onDidChangeVisibleTextEditors((editors) => this.painter.repaint(editors, this.decorationsOn() && this.enabled())),
      vscode.workspace.onDidSaveTextDocument((document) => this.saved(document)),
      vscode.workspace.onDidCloseTextDocument((document) => this.lenses.delete(document.uri.toString())),
    );
    this.context.subscriptions.push({ dispose: () => void this.dispose() });
    this.readModel();
    this.watchBundle();
    this.updateStatus();
    await this.enqueue(() => this.ensureServer());
  }

  async dispose(): Promise<void> {
    clearTimeout(this.bundleTimer);
    this.bundleWatcher?.dispose();
    await this.stopClient();
    for (const disposable of this.disposables.splice(0)) {
      disposable.dispose();
    }
  }

  /** Run `work` after everything queued before it; errors are logged, never thrown at VS Code. */
  enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(work).catch((error: unknown) => {
      this.log(`unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      this.setState("failed", "perfhint: the extension failed; see Output > perfhint");
    });
    this.queue = next;
    return next;
  }

  restart(): Promise<void> {
    return this.enqueue(async () => {
      this.log("restarting the server");
      await this.stopClient();
      await this.ensureServer();
    });
  }

  // --- finding and installing Python -----------------------------------------------------------

  private storageDir(): string {
    const dir = this.context.globalStorageUri.fsPath;
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  private shippedWheel(): ShippedWheel | undefined {
    const directory = vscode.Uri.joinPath(this.context.extensionUri, "python").fsPath;
    let names: string[];
    try {
      names = fs.readdirSync(directory);
    } catch {
      return undefined;
    }
    return pickWheel(directory, names, (name) => fs.statSync(path.join(directory, name)).size);
  }

  private async pythonExtensionExecutable(): Promise<string | undefined> {
    if (this.pythonApi === null) {
      this.pythonApi = undefined;
      const extension = vscode.extensions.getExtension<PythonEnvironmentsApi>(PYTHON_EXTENSION);
      if (extension !== undefined) {
        const api = extension.isActive ? extension.exports : await extension.activate();
        if (api?.environments !== undefined) {
          this.pythonApi = api;
          const subscription = api.environments.onDidChangeActiveEnvironmentPath?.(() => {
            if (this.interpreter?.source === "python-extension" || this.interpreter?.source === "private-environment") {
              this.log("the Python extension's active environment changed");
              void this.restart();
            }
          });
          if (subscription !== undefined) this.disposables.push(subscription);
        }
      }
    }
    const resource = vscode.window.activeTextEditor?.document.uri ?? vscode.workspace.workspaceFolders?.[0]?.uri;
    return executableFromPythonApi(this.pythonApi ?? undefined, resource);
  }

  private async candidate(): Promise<{ interpreter: Interpreter; probe: Probe }> {
    const interpreter = await resolveInterpreter({
      setting: configuredInterpreter(this.config().get("interpreter"), this.pathContext(undefined)),
      pythonExtension: () => this.pythonExtensionExecutable(),
      platform: this.deps.platform,
    });
    const probe = await this.deps.probe(interpreter.command);
    this.log(`interpreter ${interpreter.command} (from ${describeSource(interpreter.source)}): ${describeProbe(probe)}`);
    return { interpreter, probe };
  }

  async ensureServer(): Promise<void> {
    this.setState("starting");
    const wheel = this.shippedWheel();
    const dir = venvDir(this.storageDir());
    const python = venvPython(dir, this.deps.platform);
    const { interpreter, probe } = await this.candidate();
    let venvProbe: Probe | undefined;
    let marker: string | undefined;
    if (!usable(probe) && fs.existsSync(python)) {
      venvProbe = await this.deps.probe(python);
      this.log(`private environment ${python}: ${describeProbe(venvProbe)}`);
      marker = readText(venvMarker(dir));
    }
    const decision = decide({ candidate: interpreter, candidateProbe: probe, venvPython: python, venvProbe, venvMarker: marker, wheel });
    await this.act(decision, wheel);
  }

  private async act(decision: Decision, wheel: ShippedWheel | undefined): Promise<void> {
    switch (decision.kind) {
      case "use":
        await this.startClient(decision.interpreter);
        return;
      case "fail":
        this.fail(decision.message);
        return;
      case "install":
        if (decision.update && wheel !== undefined) {
          await this.install(decision, wheel);
          return;
        }
        this.offerInstall(decision.reason);
        return;
    }
  }

  private offerInstall(reason: string): void {
    const message =
      `perfhint: ${reason}. Install the perfhint server into a private environment? ` +
      "(pip downloads onnxruntime and the other dependencies from PyPI.)";
    this.log(message);
    this.setState("setup", message);
    const install = "Install";
    const choose = "Choose interpreter";
    // Not awaited: an unanswered prompt must not hold the queue.
    void vscode.window.showInformationMessage(message, install, choose).then((choice) => {
      if (choice === install) {
        void vscode.commands.executeCommand(COMMANDS.install);
      } else if (choice === choose) {
        void vscode.commands.executeCommand("workbench.action.openSettings", `${SECTION}.interpreter`);
      }
    });
  }

  /** The "Install" button and the command: (re)build the private environment, then start. */
  private async installOnRequest(): Promise<void> {
    const wheel = this.shippedWheel();
    await this.stopClient();
    const { interpreter, probe } = await this.candidate();
    if (wheel === undefined) {
      this.fail("perfhint: this build of the extension ships no server wheel; install perfhint with pip and set perfhint.interpreter.");
      return;
    }
    if (!probe.ran || tooOld(probe)) {
      const decision = decide({ candidate: interpreter, candidateProbe: probe, venvPython: "", venvProbe: undefined, venvMarker: undefined, wheel });
      this.fail(decision.kind === "fail" ? decision.message : `perfhint: ${interpreter.command} cannot build the environment.`);
      return;
    }
    // A Python that already runs perfhint is still a fine base for the private environment.
    const base = interpreter.command;
    await this.install({ basePython: base, update: false }, wheel);
  }

  private async install(decision: { basePython: string; update: boolean }, wheel: ShippedWheel): Promise<void> {
    const dir = venvDir(this.storageDir());
    const python = venvPython(dir, this.deps.platform);
    this.setState("installing");
    const steps = installSteps(decision, dir, python, wheel);
    const outcome = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: "perfhint: setting up the server", cancellable: false },
      (progress) =>
        runInstall(
          steps,
          this.deps.runner,
          (line) => this.output.appendLine(line),
          (message, increment) => progress.report({ message, increment }),
        ),
    );
    if (!outcome.ok) {
      this.fail(outcome.message, "Retry");
      return;
    }
    fs.writeFileSync(venvMarker(dir), `${wheel.marker}\n`);
    const probe = await this.deps.probe(python);
    this.log(`private environment ${python}: ${describeProbe(probe)}`);
    if (!usable(probe)) {
      this.fail(`perfhint: the server was installed but does not start (${probe.error ?? "no answer"}). See Output > perfhint.`, "Retry");
      return;
    }
    void vscode.window.showInformationMessage(`perfhint: server ${probe.perfhint} installed in a private environment.`);
    await this.startClient({ command: python, source: "private-environment" });
  }

  private fail(message: string, ...extra: string[]): void {
    this.log(message);
    this.setState("failed", message);
    const show = "Show output";
    void vscode.window.showErrorMessage(message, show, ...extra).then((choice) => {
      if (choice === show) this.output.show(true);
      if (choice === "Retry") void vscode.commands.executeCommand(COMMANDS.install);
    });
  }

  // --- the language client ----------------------------------------------------------------------

  private async startClient(interpreter: Interpreter): Promise<void> {
    this.interpreter = interpreter;
    this.log(`starting ${interpreter.command} ${server.SERVER_ARGS.join(" ")} (${describeSource(interpreter.source)})`);
    const client = this.deps.createClient(interpreter.command, this.storageDir(), this.output, {
      configuration: (scopeUri) => this.serverSection(scopeUri),
      compareResult: (result) => void this.showCompare(result),
      codeLenses: (uri, titles) => this.lensesArrived(uri, titles),
      hintsAsDecorations: () => this.decorationsOn(),
      inlayHintsRequested: (document) => this.painter.schedule(document),
    });
    this.client = client;
    client.onDidChangeState((event) => {
      if (this.client === client && event.newState === State.Stopped && this.state === "running") {
        this.setState("stopped", "perfhint: the server stopped; see Output > perfhint, or run perfhint: Restart server");
      }
    });
    try {
      await client.start();
    } catch (error) {
      this.client = undefined;
      this.fail(`perfhint: the server did not start (${error instanceof Error ? error.message : String(error)}). See Output > perfhint.`);
      return;
    }
    this.setState("running");
    if (this.enabledOverride !== undefined && this.enabledOverride !== this.settingEnabled()) {
      await this.serverToggle(client); // re-apply a toggle made before the restart
    }
    this.activeEditorChanged(vscode.window.activeTextEditor);
  }

  private async stopClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.lenses.clear();
    if (client === undefined) return;
    try {
      await client.stop(5000);
    } catch (error) {
      this.log(`stopping the server: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.setState("stopped");
  }

  private serverSection(scopeUri: string | undefined): Record<string, unknown> {
    const scope = scopeUri !== undefined ? vscode.Uri.parse(scopeUri) : undefined;
    const config = vscode.workspace.getConfiguration(SECTION, scope);
    const values: Record<string, unknown> = {};
    for (const key of SERVER_KEYS) values[key] = explicitValue(config.inspect(key));
    return serverConfig(values, this.pathContext(scope));
  }

  // --- commands ---------------------------------------------------------------------------------

  async toggle(): Promise<void> {
    if (this.client === undefined || this.state !== "running") {
      this.enabledOverride = !this.enabled();
      void vscode.window.showInformationMessage(`perfhint: hints ${this.enabledOverride ? "on" : "off"} (applies when the server runs).`);
      this.updateStatus();
      return;
    }
    await this.serverToggle(this.client);
  }

  private async serverToggle(client: LanguageClient): Promise<void> {
    const answer = (await server.executeServerCommand(client, server.TOGGLE, [])) as { enabled?: unknown; error?: string } | null;
    if (answer !== null && typeof answer.enabled === "boolean") {
      this.enabledOverride = answer.enabled;
      this.log(`hints ${answer.enabled ? "on" : "off"}`);
    } else if (answer?.error !== undefined) {
      void vscode.window.showErrorMessage(answer.error);
    }
    this.painter.repaint(vscode.window.visibleTextEditors, this.decorationsOn() && this.enabled());
    this.updateStatus();
  }

  async compare(target?: vscode.Uri): Promise<void> {
    const document = target !== undefined
      ? vscode.workspace.textDocuments.find((doc) => doc.uri.toString() === target.toString())
      : vscode.window.activeTextEditor?.document;
    if (document === undefined || !server.LANGUAGES.includes(document.languageId)) {
      void vscode.window.showWarningMessage("perfhint: open a Python, C or C++ file to compare it with HEAD.");
      return;
    }
    const client = this.client;
    if (client === undefined || this.state !== "running") {
      void vscode.window.showWarningMessage("perfhint: the server is not running; run perfhint: Restart server (see Output > perfhint).");
      return;
    }
    const result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: "perfhint: comparing with HEAD" },
      () => server.executeServerCommand(client, server.COMPARE_WITH_HEAD, [server.protocolUri(client, document.uri)]),
    );
    await this.showCompare(result);
  }

  async showCompare(result: unknown): Promise<void> {
    if (!isCompareResult(result)) {
      void vscode.window.showErrorMessage("perfhint: the server gave no comparison; see Output > perfhint.");
      return;
    }
    if (result.error !== undefined && result.rows === undefined) {
      void vscode.window.showWarningMessage(result.error);
      return;
    }
    const uri = vscode.Uri.from({ scheme: COMPARE_SCHEME, path: `/${fileName(result.uri)} vs ${result.revision ?? "HEAD"}.md` });
    this.compareTexts.set(uri.toString(), renderCompare(result));
    this.compareChanged.fire(uri);
    const document = await vscode.workspace.openTextDocument(uri);
    try {
      // Rendered, the table lines up whatever the editor's word wrap; the built-in Markdown extension
      // previews any document, including this virtual one.
      await vscode.commands.executeCommand("markdown.showPreviewToSide", uri);
    } catch {
      await vscode.window.showTextDocument(document, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true });
    }
  }

  // --- status bar, lenses, decorations ------------------------------------------------------------

  private lensesArrived(uri: vscode.Uri, titles: string[]): void {
    this.lenses.set(uri.toString(), summariseLenses(titles));
    if (vscode.window.activeTextEditor?.document.uri.toString() === uri.toString()) this.updateStatus();
  }

  private async fetchLenses(uri: vscode.Uri): Promise<void> {
    const client = this.client;
    if (client === undefined || this.state !== "running") return;
    try {
      this.lensesArrived(uri, await server.codeLensTitles(client, uri));
    } catch (error) {
      this.log(`code lens request failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private activeEditorChanged(editor: vscode.TextEditor | undefined): void {
    this.updateStatus();
    if (editor !== undefined && server.LANGUAGES.includes(editor.document.languageId)) {
      void this.fetchLenses(editor.document.uri);
      if (this.decorationsOn() && this.enabled()) this.painter.schedule(editor.document);
    }
  }

  private saved(document: vscode.TextDocument): void {
    if (!server.LANGUAGES.includes(document.languageId)) return;
    for (const delay of LENS_REFETCH_MS) {
      setTimeout(() => void this.fetchLenses(document.uri), delay).unref?.();
    }
  }

  private async fetchHints(document: vscode.TextDocument): Promise<server.PlainHint[] | undefined> {
    const client = this.client;
    if (client === undefined || this.state !== "running" || !this.decorationsOn() || !this.enabled()) return undefined;
    return server.inlayHints(client, document);
  }

  private readModel(): void {
    const configured = this.config().get<string>("bundlePath");
    const expanded = configured ? expandPath(configured, this.pathContext(undefined)) : undefined;
    const directory = bundleDirectory(expanded, this.deps.env);
    this.model = directory !== undefined ? parseManifest(readText(manifestPath(directory)) ?? "") : undefined;
  }

  private watchBundle(): void {
    this.bundleWatcher?.dispose();
    this.bundleWatcher = undefined;
    const configured = this.config().get<string>("bundlePath");
    const directory = bundleDirectory(configured ? expandPath(configured, this.pathContext(undefined)) : undefined, this.deps.env);
    if (directory === undefined) return;
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(directory), "manifest.json"));
    const changed = () => {
      clearTimeout(this.bundleTimer);
      this.bundleTimer = setTimeout(() => {
        this.log(`the model bundle at ${directory} changed`);
        this.readModel();
        void this.restart();
      }, BUNDLE_RESTART_DELAY_MS);
    };
    watcher.onDidChange(changed);
    watcher.onDidCreate(changed);
    watcher.onDidDelete(changed);
    this.bundleWatcher = watcher;
  }

  private configurationChanged(event: vscode.ConfigurationChangeEvent): void {
    if (!event.affectsConfiguration(SECTION)) return;
    if (event.affectsConfiguration(`${SECTION}.enable`)) this.enabledOverride = undefined;
    if (event.affectsConfiguration(`${SECTION}.bundlePath`)) {
      this.readModel();
      this.watchBundle();
    }
    if (needsRestart((key) => event.affectsConfiguration(key))) {
      void this.restart();
    }
    if (event.affectsConfiguration(`${SECTION}.decorations`)) {
      this.painter.repaint(vscode.window.visibleTextEditors, this.decorationsOn() && this.enabled());
      if (this.client !== undefined && this.state === "running") server.refreshInlayHints(this.client);
    }
    this.updateStatus();
  }

  private setState(state: ServerState, message?: string): void {
    this.state = state;
    this.stateMessage = message;
    this.updateStatus();
  }

  updateStatus(): void {
    const editor = vscode.window.activeTextEditor;
    const relevant = editor !== undefined && server.LANGUAGES.includes(editor.document.languageId);
    if (!relevant && this.state === "running") {
      this.statusItem.hide();
      return;
    }
    const config = this.config();
    const view = statusView({
      state: this.state,
      enabled: this.enabled(),
      model: this.model,
      defaultModel: bundleDirectory(config.get<string>("bundlePath") || undefined, this.deps.env) === undefined,
      runtimeDevice: config.get<string>("runtimeDevice") ?? "cpu",
      targetGpu: config.get<string>("targetGpu") ?? "H100",
      lenses: editor !== undefined ? this.lenses.get(editor.document.uri.toString()) : undefined,
      message: this.stateMessage,
    });
    this.statusItem.text = view.text;
    this.statusItem.tooltip = view.tooltip;
    this.statusItem.show();
  }

  // --- small helpers ----------------------------------------------------------------------------

  private config(scope?: vscode.Uri): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION, scope);
  }

  private settingEnabled(): boolean {
    return this.config().get<boolean>("enable") ?? true;
  }

  enabled(): boolean {
    return this.enabledOverride ?? this.settingEnabled();
  }

  private decorationsOn(): boolean {
    return this.config().get<boolean>("decorations") === true;
  }

  private pathContext(scope: vscode.Uri | undefined): { workspaceFolder?: string; home: string } {
    const folder = (scope !== undefined ? vscode.workspace.getWorkspaceFolder(scope) : undefined) ?? vscode.workspace.workspaceFolders?.[0];
    return { workspaceFolder: folder?.uri.fsPath, home: os.homedir() };
  }

  log(line: string): void {
    this.output.appendLine(`[client ${new Date().toLocaleTimeString()}] ${line}`);
  }
}

/** Paints a document's hints as coloured end-of-line decorations; owns the four decoration types. */
export class DecorationPainter implements vscode.Disposable {
  private readonly types: Record<Level, vscode.TextEditorDecorationType>;
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly fetch: (document: vscode.TextDocument) => Promise<server.PlainHint[] | undefined>) {
    const after = { margin: "0 0 0 1.5em", fontStyle: "italic" };
    const coloured = (level: Exclude<Level, "neutral">) =>
      vscode.window.createTextEditorDecorationType({
        after,
        dark: { after: { color: COLOURS[level].dark } },
        light: { after: { color: COLOURS[level].light } },
      });
    this.types = {
      small: coloured("small"),
      medium: coloured("medium"),
      large: coloured("large"),
      neutral: vscode.window.createTextEditorDecorationType({ after: { ...after, color: new vscode.ThemeColor("editorInlayHint.foreground") } }),
    };
  }

  schedule(document: vscode.TextDocument): void {
    const key = document.uri.toString();
    clearTimeout(this.timers.get(key));
    this.timers.set(key, setTimeout(() => {
      this.timers.delete(key);
      void this.paint(document);
    }, 150));
  }

  async paint(document: vscode.TextDocument): Promise<void> {
    let hints: server.PlainHint[] | undefined;
    try {
      hints = await this.fetch(document);
    } catch {
      return; // the server is restarting: keep what is painted until the next request
    }
    const byLevel: Record<Level, vscode.DecorationOptions[]> = { small: [], medium: [], large: [], neutral: [] };
    for (const hint of hints ?? []) {
      const text = labelText(hint.label);
      const position = new vscode.Position(hint.line, hint.character);
      byLevel[level(text)].push({ range: new vscode.Range(position, position), renderOptions: { after: { contentText: text } } });
    }
    for (const editor of vscode.window.visibleTextEditors) {
      if (editor.document.uri.toString() !== document.uri.toString()) continue;
      for (const name of Object.keys(this.types) as Level[]) editor.setDecorations(this.types[name], byLevel[name]);
    }
  }

  /** Paint every visible editor (on) or remove every decoration (off). */
  repaint(editors: readonly vscode.TextEditor[], on: boolean): void {
    for (const editor of editors) {
      if (on) {
        this.schedule(editor.document);
      } else {
        for (const type of Object.values(this.types)) editor.setDecorations(type, []);
      }
    }
  }

  dispose(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    for (const type of Object.values(this.types)) type.dispose();
  }
}

function describeProbe(probe: Probe): string {
  if (!probe.ran) return `did not run (${probe.error ?? "no answer"})`;
  const python = probe.version !== undefined ? `Python ${versionText(probe.version)}` : "Python";
  if (usable(probe)) return `${python}, perfhint ${probe.perfhint}`;
  return `${python}, ${probe.error ?? "perfhint not importable"}`;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}
