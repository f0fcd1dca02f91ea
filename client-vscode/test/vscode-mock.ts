/**
 * A hand-written stand-in for the `vscode` module and for `vscode-languageclient/node`, just large
 * enough for extension.ts and server.ts, so their wiring runs under `node --test` without an editor.
 *
 * `install()` hooks Node's module loader so that `require("vscode")` and
 * `require("vscode-languageclient/node")` return these objects; call it before requiring the
 * extension. Everything the extension does to the editor is recorded on `mock` for tests to read.
 * Configuration defaults come from package.json, the same source of truth the editor uses.
 */

import * as fs from "node:fs";
import * as path from "node:path";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const Module = require("node:module") as { _load: (request: string, parent: unknown, isMain: boolean) => unknown };

type Listener<T> = (value: T) => unknown;

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  event = (listener: Listener<T>) => {
    this.listeners.push(listener);
    return { dispose: () => (this.listeners = this.listeners.filter((item) => item !== listener)) };
  };
  fire(value: T): void {
    for (const listener of [...this.listeners]) listener(value);
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class Uri {
  constructor(
    readonly scheme: string,
    readonly path: string,
  ) {}
  static file(fsPath: string): Uri {
    return new Uri("file", fsPath);
  }
  static parse(text: string): Uri {
    const match = /^([a-z][\w+.-]*):(?:\/\/)?(.*)$/i.exec(text);
    return match ? new Uri(match[1], decodeURIComponent(match[2])) : new Uri("file", text);
  }
  static from(parts: { scheme: string; path: string }): Uri {
    return new Uri(parts.scheme, parts.path);
  }
  static joinPath(base: Uri, ...parts: string[]): Uri {
    return new Uri(base.scheme, path.posix.join(base.path, ...parts));
  }
  get fsPath(): string {
    return this.path;
  }
  toString(): string {
    return `${this.scheme}://${this.path}`;
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  constructor(
    readonly start: Position,
    readonly end: Position,
  ) {}
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export class RelativePattern {
  constructor(
    readonly base: Uri,
    readonly pattern: string,
  ) {}
}

export interface MockDocument {
  uri: Uri;
  languageId: string;
  lineCount: number;
  getText(): string;
}

export interface MockEditor {
  document: MockDocument;
  decorations: Map<unknown, unknown[]>;
  setDecorations(type: unknown, options: unknown[]): void;
}

export interface Message {
  kind: "info" | "warning" | "error";
  text: string;
  items: string[];
}

const packageJson = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as {
  contributes: { configuration: { properties: Record<string, { default: unknown }> } };
};

/** What the extension did, and knobs the tests turn. */
export const mock = {
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  executed: [] as { id: string; args: unknown[] }[],
  messages: [] as Message[],
  /** Which button the user "clicks" for a message; undefined: dismissed. */
  answer: (_message: Message): string | undefined => undefined,
  output: [] as string[],
  statusItem: { text: "", tooltip: "" as unknown, command: undefined as unknown, visible: false },
  config: {} as Record<string, unknown>,
  configListeners: new EventEmitter<{ affectsConfiguration(key: string): boolean }>(),
  activeEditorListeners: new EventEmitter<MockEditor | undefined>(),
  saveListeners: new EventEmitter<MockDocument>(),
  contentProviders: new Map<string, { provideTextDocumentContent(uri: Uri): string }>(),
  shown: [] as { uri: Uri; text: string }[],
  activeTextEditor: undefined as MockEditor | undefined,
  visibleTextEditors: [] as MockEditor[],
  textDocuments: [] as MockDocument[],
  workspaceFolders: [] as { uri: Uri; name: string; index: number }[],
  extensions: new Map<string, unknown>(),
  decorationTypes: [] as { options: unknown; disposed: boolean }[],
  clients: [] as FakeLanguageClient[],
  /** Answers of the fake server, by LSP method (and by command for workspace/executeCommand). */
  server: {
    commands: new Map<string, (args: unknown[]) => unknown>(),
    codeLens: [] as string[],
    inlayHints: [] as { position: { line: number; character: number }; label: string }[],
  },
  reset(): void {
    this.commands.clear();
    this.executed = [];
    this.messages = [];
    this.answer = () => undefined;
    this.output = [];
    this.statusItem = { text: "", tooltip: "", command: undefined, visible: false };
    this.config = {};
    this.configListeners = new EventEmitter();
    this.activeEditorListeners = new EventEmitter();
    this.saveListeners = new EventEmitter();
    this.contentProviders.clear();
    this.shown = [];
    this.activeTextEditor = undefined;
    this.visibleTextEditors = [];
    this.textDocuments = [];
    this.workspaceFolders = [];
    this.extensions.clear();
    this.decorationTypes = [];
    this.clients = [];
    this.server = { commands: new Map(), codeLens: [], inlayHints: [] };
  },
  /** Change settings and tell the extension, as the editor does. */
  changeConfig(values: Record<string, unknown>): void {
    Object.assign(this.config, values);
    const keys = Object.keys(values).map((key) => `perfhint.${key}`);
    this.configListeners.fire({
      affectsConfiguration: (section: string) => keys.some((key) => key === section || key.startsWith(`${section}.`)),
    });
  },
};

export function makeDocument(fsPath: string, languageId: string, text = ""): MockDocument {
  return { uri: Uri.file(fsPath), languageId, lineCount: text.split("\n").length, getText: () => text };
}

export function makeEditor(document: MockDocument): MockEditor {
  const decorations = new Map<unknown, unknown[]>();
  return { document, decorations, setDecorations: (type, options) => decorations.set(type, options) };
}

function message(kind: Message["kind"]) {
  return (text: string, ...items: string[]) => {
    const entry = { kind, text, items };
    mock.messages.push(entry);
    return Promise.resolve(mock.answer(entry));
  };
}

export const vscode = {
  EventEmitter,
  Uri,
  Position,
  Range,
  ThemeColor,
  RelativePattern,
  StatusBarAlignment: { Left: 1, Right: 2 },
  ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
  ViewColumn: { Active: -1, Beside: -2 },
  window: {
    createOutputChannel: () => ({
      appendLine: (line: string) => mock.output.push(line),
      append: (text: string) => mock.output.push(text),
      show: () => undefined,
      dispose: () => undefined,
    }),
    createStatusBarItem: () => {
      const item = mock.statusItem;
      return Object.assign(item, {
        show: () => (mock.statusItem.visible = true),
        hide: () => (mock.statusItem.visible = false),
        dispose: () => undefined,
      });
    },
    showInformationMessage: message("info"),
    showWarningMessage: message("warning"),
    showErrorMessage: message("error"),
    withProgress: (_options: unknown, task: (progress: { report(value: unknown): void }) => unknown) => Promise.resolve(task({ report: () => undefined })),
    get activeTextEditor() {
      return mock.activeTextEditor;
    },
    get visibleTextEditors() {
      return mock.visibleTextEditors;
    },
    onDidChangeActiveTextEditor: (listener: Listener<MockEditor | undefined>) => mock.activeEditorListeners.event(listener),
    onDidChangeVisibleTextEditors: () => ({ dispose: () => undefined }),
    createTextEditorDecorationType: (options: unknown) => {
      const type = { options, disposed: false, dispose: () => (type.disposed = true) };
      mock.decorationTypes.push(type);
      return type;
    },
    showTextDocument: (document: { uri: Uri; getText(): string }) => {
      mock.shown.push({ uri: document.uri, text: document.getText() });
      return Promise.resolve();
    },
  },
  workspace: {
    getConfiguration: () => ({
      get: (key: string) => (key in mock.config ? mock.config[key] : packageJson.contributes.configuration.properties[`perfhint.${key}`]?.default),
      inspect: (key: string) => ({
        key: `perfhint.${key}`,
        defaultValue: packageJson.contributes.configuration.properties[`perfhint.${key}`]?.default,
        globalValue: mock.config[key],
      }),
    }),
    onDidChangeConfiguration: (listener: Listener<{ affectsConfiguration(key: string): boolean }>) => mock.configListeners.event(listener),
    onDidSaveTextDocument: (listener: Listener<MockDocument>) => mock.saveListeners.event(listener),
    onDidCloseTextDocument: () => ({ dispose: () => undefined }),
    registerTextDocumentContentProvider: (scheme: string, provider: { provideTextDocumentContent(uri: Uri): string }) => {
      mock.contentProviders.set(scheme, provider);
      return { dispose: () => mock.contentProviders.delete(scheme) };
    },
    openTextDocument: (uri: Uri) => {
      const provider = mock.contentProviders.get(uri.scheme);
      const text = provider?.provideTextDocumentContent(uri) ?? "";
      return Promise.resolve({ uri, getText: () => text });
    },
    createFileSystemWatcher: () => ({
      onDidChange: () => undefined,
      onDidCreate: () => undefined,
      onDidDelete: () => undefined,
      dispose: () => undefined,
    }),
    get workspaceFolders() {
      return mock.workspaceFolders;
    },
    getWorkspaceFolder: (uri: Uri) => mock.workspaceFolders.find((folder) => uri.fsPath.startsWith(folder.uri.fsPath)),
    get textDocuments() {
      return mock.textDocuments;
    },
  },
  commands: {
    registerCommand: (id: string, run: (...args: unknown[]) => unknown) => {
      if (mock.commands.has(id)) throw new Error(`command '${id}' already exists`);
      mock.commands.set(id, run);
      return { dispose: () => mock.commands.delete(id) };
    },
    executeCommand: (id: string, ...args: unknown[]) => {
      mock.executed.push({ id, args });
      const run = mock.commands.get(id);
      return Promise.resolve(run?.(...args));
    },
  },
  extensions: {
    getExtension: (id: string) => mock.extensions.get(id),
  },
};

// --- vscode-languageclient/node --------------------------------------------------------------------

const request = (method: string) => ({ type: { method }, method });

export class FakeLanguageClient {
  state = 1;
  started = false;
  stopped = false;
  readonly stateListeners = new EventEmitter<{ oldState: number; newState: number }>();
  readonly requests: { method: string; params: unknown }[] = [];
  readonly code2ProtocolConverter = { asUri: (uri: Uri) => uri.toString() };

  constructor(
    readonly id: string,
    readonly name: string,
    readonly serverOptions: { run: { command: string; args: string[]; options: { cwd: string } } },
    readonly clientOptions: {
      documentSelector: { scheme: string; language: string }[];
      initializationOptions: { perfhint: Record<string, unknown> };
      middleware: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    },
  ) {
    mock.clients.push(this);
  }
  onDidChangeState(listener: Listener<{ oldState: number; newState: number }>) {
    return this.stateListeners.event(listener);
  }
  async start(): Promise<void> {
    this.started = true;
    this.state = 2;
  }
  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 1;
    this.stateListeners.fire({ oldState: 2, newState: 1 });
  }
  async sendRequest(type: { method: string }, params: any): Promise<unknown> {
    this.requests.push({ method: type.method, params });
    switch (type.method) {
      case "workspace/executeCommand": {
        const run = mock.server.commands.get(params.command);
        return run ? run(params.arguments) : null;
      }
      case "textDocument/codeLens":
        return mock.server.codeLens.map((title) => ({ range: {}, command: { title, command: "perfhint.compareWithHead" } }));
      case "textDocument/inlayHint":
        return mock.server.inlayHints;
      default:
        return null;
    }
  }
  getFeature() {
    return { getProvider: () => ({ onDidChangeInlayHints: new EventEmitter<void>() }) };
  }
}

export const languageClient = {
  LanguageClient: FakeLanguageClient,
  State: { Stopped: 1, Running: 2, Starting: 3 },
  RevealOutputChannelOn: { Info: 1, Warn: 2, Error: 3, Never: 4 },
  ExecuteCommandRequest: request("workspace/executeCommand"),
  CodeLensRequest: request("textDocument/codeLens"),
  InlayHintRequest: request("textDocument/inlayHint"),
};

let installed = false;

export function install(): void {
  if (installed) return;
  installed = true;
  const original = Module._load;
  Module._load = function load(requestName: string, parent: unknown, isMain: boolean) {
    if (requestName === "vscode") return vscode;
    if (requestName === "vscode-languageclient/node") return languageClient;
    return original.call(this, requestName, parent, isMain);
  };
}
