/**
 * The language client: how the server is started and what the client adds in between.
 *
 * What is hard: vscode-languageclient registers a VS Code command for every command the server
 * announces (`perfhint.compareWithHead`, `perfhint.toggle`), and the code lens invokes
 * `perfhint.compareWithHead` directly, so the extension's own commands have other ids and the
 * answer to a lens click is caught in `middleware.executeCommand`, not lost. The server pulls its
 * settings (workspace/configuration); `middleware.workspace.configuration` answers the `perfhint`
 * section with settings.serverConfig (server keys only, paths made absolute per folder). Code
 * lenses pass through `provideCodeLenses` on their way to the editor, which is where the status
 * bar reads Σ Δ; inlay hints pass through `provideInlayHints`, which hides them when the user chose
 * decorations instead.
 */

import * as vscode from "vscode";
import {
  CodeLensRequest,
  ExecuteCommandRequest,
  InlayHintRequest,
  LanguageClient,
  RevealOutputChannelOn,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node";

import { pythonEnv } from "./process";

export const SERVER_ARGS = ["-m", "perfhint", "serve"];
export const COMPARE_WITH_HEAD = "perfhint.compareWithHead"; // server/perfhint/lsp/features/commands.py
export const TOGGLE = "perfhint.toggle";
export const LANGUAGES = ["python", "c", "cpp", "cuda-cpp"];

export interface ClientHooks {
  /** The `perfhint` section for the server, for a document URI (or the window). */
  configuration(scopeUri: string | undefined): Record<string, unknown>;
  /** A compare answer that arrived through the auto-registered command (a code lens click). */
  compareResult(result: unknown): void;
  codeLenses(uri: vscode.Uri, titles: string[]): void;
  /** true: the hints are painted as decorations, so the editor gets none. */
  hintsAsDecorations(): boolean;
  inlayHintsRequested(document: vscode.TextDocument): void;
}

export function documentSelector(): { scheme: string; language: string }[] {
  return LANGUAGES.flatMap((language) => [
    { scheme: "file", language },
    { scheme: "untitled", language },
  ]);
}

export function createClient(
  python: string,
  cwd: string,
  output: vscode.OutputChannel,
  hooks: ClientHooks,
): LanguageClient {
  const executable = { command: python, args: SERVER_ARGS, options: { cwd, env: pythonEnv(process.env) } };
  const serverOptions: ServerOptions = { run: executable, debug: executable };
  const clientOptions: LanguageClientOptions = {
    documentSelector: documentSelector(),
    outputChannel: output,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    initializationOptions: { perfhint: hooks.configuration(undefined) },
    synchronize: { configurationSection: "perfhint" },
    middleware: {
      workspace: {
        configuration: async (params, token, next) => {
          const answers = await next(params, token);
          if (!Array.isArray(answers)) {
            return answers;
          }
          return params.items.map((item, index) =>
            item.section === "perfhint" ? hooks.configuration(item.scopeUri) : answers[index],
          );
        },
      },
      executeCommand: async (command, args, next) => {
        const result = await next(command, args);
        if (command === COMPARE_WITH_HEAD) {
          hooks.compareResult(result);
        }
        return result;
      },
      provideCodeLenses: async (document, token, next) => {
        const lenses = await next(document, token);
        hooks.codeLenses(document.uri, (lenses ?? []).map((lens) => lens.command?.title ?? ""));
        return lenses;
      },
      provideInlayHints: async (document, range, token, next) => {
        if (hooks.hintsAsDecorations()) {
          hooks.inlayHintsRequested(document);
          return [];
        }
        return next(document, range, token);
      },
    },
  };
  return new LanguageClient("perfhint", "perfhint", serverOptions, clientOptions);
}

/** The protocol's view of a document URI, as the server saw it in didOpen. */
export function protocolUri(client: LanguageClient, uri: vscode.Uri): string {
  return client.code2ProtocolConverter.asUri(uri);
}

export function executeServerCommand(client: LanguageClient, command: string, args: unknown[]): Promise<unknown> {
  return client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
}

export async function codeLensTitles(client: LanguageClient, uri: vscode.Uri): Promise<string[]> {
  const lenses = await client.sendRequest(CodeLensRequest.type, { textDocument: { uri: protocolUri(client, uri) } });
  return (lenses ?? []).map((lens) => lens.command?.title ?? "");
}

export interface PlainHint {
  line: number;
  character: number;
  label: string | { value: string }[];
}

export async function inlayHints(client: LanguageClient, document: vscode.TextDocument): Promise<PlainHint[]> {
  const end = document.lineCount;
  const hints = await client.sendRequest(InlayHintRequest.type, {
    textDocument: { uri: protocolUri(client, document.uri) },
    range: { start: { line: 0, character: 0 }, end: { line: end, character: 0 } },
  });
  return (hints ?? []).map((hint) => ({ line: hint.position.line, character: hint.position.character, label: hint.label }));
}

/** Ask the editor to re-request inlay hints (after switching between hints and decorations). */
export function refreshInlayHints(client: LanguageClient): void {
  const feature = client.getFeature(InlayHintRequest.method);
  for (const document of vscode.workspace.textDocuments) {
    feature?.getProvider(document)?.onDidChangeInlayHints.fire();
  }
}
